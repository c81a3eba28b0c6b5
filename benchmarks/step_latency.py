"""Per-step latency of one LSTM(64) model on every path, in one run.

The same Keras model (LSTM(64) + Dense(4), 6 features, seeded weights) is timed as
Keras ``model(x)`` on a stateful twin, Keras ``predict`` (few iterations: it is slow),
and as its exports (numpy .npz, LiteRT float32 / int8, ONNX Runtime float32 / dynamic),
each both through the edgelstm runtime (``StatefulModel.step``: input checks, state
bookkeeping, quantization) and as a bare engine loop (the engine's own API, states
carried by hand). The runtime/bare ratio is the runtime's overhead; the issue's budget
is 1.25x for LiteRT and ONNX Runtime float. Loops run alternately in rounds so a noisy
machine's drift hits both alike; figures are medians over all rounds.

    python benchmarks/step_latency.py [--steps 3000] [--rounds 3] [--json FILE]
    python benchmarks/step_latency.py --spec-only out/lstm64.npz   # the model as a spec, numpy only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

UNITS, FEATURES, OUTPUTS = 64, 6, 4
KERAS_CALLS = 300  # model(x) costs milliseconds per step
PREDICT_CALLS = 15  # predict costs tens of milliseconds per call


def lstm_spec():
    """The benchmark model as a ModelSpec with seeded weights (numpy only)."""
    from edgelstm.core.spec import LayerSpec, ModelSpec

    rng = np.random.default_rng(0)

    def w(*shape, scale=1.0):
        return (scale * rng.uniform(-1, 1, shape) / np.sqrt(shape[0])).astype(np.float32)

    return ModelSpec(FEATURES, [
        LayerSpec("lstm", UNITS, {"kernel": w(FEATURES, 4 * UNITS), "recurrent_kernel": w(UNITS, 4 * UNITS, scale=0.8),
                                  "bias": w(4 * UNITS)},
                  activation="tanh", recurrent_activation="sigmoid", return_sequences=False),
        LayerSpec("dense", OUTPUTS, {"kernel": w(UNITS, OUTPUTS), "bias": w(OUTPUTS)}),
    ], name=f"lstm{UNITS}_bench")


def keras_stateful(spec):
    """A stateful Keras twin of the spec (batch 1, one timestep per call)."""
    import keras

    lstm, dense = spec.layers
    model = keras.Sequential([
        keras.Input(batch_shape=(1, 1, FEATURES)),
        keras.layers.LSTM(UNITS, stateful=True),
        keras.layers.Dense(OUTPUTS),
    ])
    model.layers[0].set_weights([lstm.weights["kernel"], lstm.weights["recurrent_kernel"], lstm.weights["bias"]])
    model.layers[1].set_weights([dense.weights["kernel"], dense.weights["bias"]])
    return model


# -- loops: each returns nanoseconds per step --------------------------------------------------

def _timed(xs, body) -> np.ndarray:
    clock = time.perf_counter_ns
    times = np.empty(len(xs), np.int64)
    for t, x in enumerate(xs):
        t0 = clock()
        body(x)
        times[t] = clock() - t0
    return times


def runtime_loop(model, xs):
    model.reset()
    return _timed(xs, model.step)


def numpy_bare(spec):
    from edgelstm.runtime import reference

    state = reference.zero_state(spec)

    def body(x):
        nonlocal state
        _, state = reference.step(spec, x[None], state)
    return body


def _q(x, scale, zp, dtype):
    from edgelstm.runtime.tflite_backend import quantize

    return x if scale == 0.0 else quantize(x, dtype, scale, zp)


def _dq(v, scale, zp):
    return v if scale == 0.0 else (v.astype(np.float32) - zp) * np.float32(scale)


def litert_bare(path, io):
    """set_tensor / invoke / get_tensor on a fresh interpreter; (de)quantization in numpy."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    sig = interp._get_full_signature_list()
    (runner,) = sig.values()
    details = {d["index"]: d for d in interp.get_input_details() + interp.get_output_details()}

    def edge(index):
        d = details[index]
        scale, zp = d["quantization"]
        return index, d["dtype"], scale, zp

    x_in = edge(runner["inputs"][io.input])
    y_out = edge(runner["outputs"][io.output])
    s_in = [edge(runner["inputs"][s.name]) for s in io.states]
    s_out = [edge(runner["outputs"][s.output]) for s in io.states]
    state = [np.zeros((1, UNITS), np.float32) for _ in io.states]
    set_tensor, get_tensor, invoke = interp.set_tensor, interp.get_tensor, interp.invoke

    def body(x):
        set_tensor(x_in[0], _q(x[None], x_in[2], x_in[3], x_in[1]))
        for (i, dt, sc, zp), s in zip(s_in, state):
            set_tensor(i, _q(s, sc, zp, dt))
        invoke()
        _dq(get_tensor(y_out[0]), y_out[2], y_out[3])
        for k, (i, _, sc, zp) in enumerate(s_out):
            state[k] = _dq(get_tensor(i), sc, zp)
    return body


def ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ort_bare(path, io):
    """session.run with a feed dict, states carried by hand."""
    session = ort_session(path)
    outputs = [io.output] + [s.output for s in io.states]
    state = [np.zeros((1, UNITS), np.float32) for _ in io.states]

    def body(x):
        nonlocal state
        feed = {io.input: x[None]}
        feed.update(zip((s.name for s in io.states), state))
        _, *state = session.run(outputs, feed)
    return body


def ort_iobinding(path, step_io):
    """The engine's floor: every tensor bound once to a fixed buffer (states in place)."""
    session = ort_session(path)
    io = session.io_binding()
    x_buf = np.zeros((1, FEATURES), np.float32)
    state = [np.zeros((1, UNITS), np.float32) for _ in step_io.states]
    io.bind_cpu_input(step_io.input, x_buf)
    for s, buf in zip(step_io.states, state):
        io.bind_cpu_input(s.name, buf)
    y = np.zeros((1, OUTPUTS), np.float32)
    io.bind_output(step_io.output, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    nxt = [np.zeros((1, UNITS), np.float32) for _ in step_io.states]
    for s, buf in zip(step_io.states, nxt):
        io.bind_output(s.output, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)

    def body(x):
        x_buf[0] = x
        session.run_with_iobinding(io)
        for s, n in zip(state, nxt):
            s[...] = n
    return body


# -- the run ----------------------------------------------------------------------------------

def stats(ns) -> dict:
    us = np.concatenate(ns) / 1e3 if isinstance(ns, list) else np.asarray(ns) / 1e3
    return {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)), "n": int(us.size)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="timed steps per loop and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of runtime and bare loops")
    parser.add_argument("--warmup", type=int, default=300, help="untimed steps before each loop")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras rows (no TensorFlow needed)")
    parser.add_argument("--spec-only", default=None, metavar="FILE.npz",
                        help="only write the benchmark model as an .npz spec and exit (numpy only)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    spec = lstm_spec()
    if args.spec_only:
        print(spec.save_npz(args.spec_only))
        return 0

    from edgelstm import runtime
    from edgelstm.core.artifact import StepInterface
    from edgelstm.converters import ExportOptions, export
    from edgelstm.latency import machine_info

    step_io = StepInterface.from_spec(spec)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((args.steps, FEATURES)).astype(np.float32)
    calib = rng.standard_normal((16, 50, FEATURES)).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="edgelstm-bench-"))

    # (label, artifact format, quantize, backend, bare-loop factory)
    targets = [("numpy", "npz", "float32", "numpy", lambda p: numpy_bare(spec))]
    available = runtime.available_backends()
    if "litert" in available:
        targets += [("LiteRT float32", "tflite", "float32", "litert", lambda p: litert_bare(p, step_io)),
                    ("LiteRT int8", "tflite", "int8", "litert", lambda p: litert_bare(p, step_io))]
    if "onnxruntime" in available:
        targets += [("ONNX Runtime float32", "onnx", "float32", "onnxruntime", lambda p: ort_bare(p, step_io)),
                    ("ONNX Runtime dynamic", "onnx", "dynamic", "onnxruntime", lambda p: ort_bare(p, step_io))]

    rows = []
    for label, fmt, quantize, backend, bare_factory in targets:
        options = ExportOptions(quantize=quantize, basename=f"lstm64-{fmt}-{quantize}",
                                calibration=None if quantize == "float32" else calib)
        print(f"exporting {label} ...", file=sys.stderr)
        path = export(spec, fmt, tmp, options)[0]
        model = runtime.load(path, backend=backend)
        bare = bare_factory(path)
        extra = ort_iobinding(path, step_io) if backend == "onnxruntime" else None
        ours, theirs, floor = [], [], []
        for _ in range(args.rounds):
            _timed(xs[: args.warmup], bare)
            theirs.append(_timed(xs, bare))
            runtime_loop(model, xs[: args.warmup])
            ours.append(runtime_loop(model, xs))
            if extra is not None:
                _timed(xs[: args.warmup], extra)
                floor.append(_timed(xs, extra))
        row = {"path": label, "file_bytes": path.stat().st_size, "runtime": stats(ours), "bare": stats(theirs)}
        row["ratio_median"] = row["runtime"]["median_us"] / row["bare"]["median_us"]
        if floor:
            row["bare_iobinding"] = stats(floor)
            row["ratio_vs_iobinding"] = row["runtime"]["median_us"] / row["bare_iobinding"]["median_us"]
        rows.append(row)

    keras_rows = []
    if not args.no_keras:
        import keras

        model = keras_stateful(spec)
        step_x = xs[:, None, :][:, None]  # (steps, 1, 1, F)
        for x in step_x[:20]:
            model(x)
        keras_rows.append({"path": "Keras model(x), stateful", **stats(_timed(step_x[:KERAS_CALLS], model))})
        model.layers[0].reset_states()
        for x in step_x[:3]:
            model.predict(x, verbose=0)
        keras_rows.append({"path": "Keras predict, stateful",
                           **stats(_timed(step_x[:PREDICT_CALLS], lambda x: model.predict(x, verbose=0)))})
        keras_version = keras.__version__
    else:
        keras_version = None

    machine = machine_info("onnxruntime")
    for dist in ("ai-edge-litert", "tensorflow-cpu", "tensorflow"):
        try:
            import importlib.metadata as md
            machine["versions"][dist] = md.version(dist)
        except Exception:
            pass
    result = {"model": f"LSTM({UNITS}) + Dense({OUTPUTS}), {FEATURES} features, step graphs, 1 thread, 1 stream",
              "steps_per_loop": args.steps * args.rounds, "machine": machine, "keras": keras_version,
              "exports": rows, "keras_paths": keras_rows}
    numpy_median = rows[0]["runtime"]["median_us"]

    print(result["model"])
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {platform.system()} {platform.machine()}, "
          f"Python {machine['python']}")
    print(f"{'path':24s} {'runtime us':>11s} {'bare us':>9s} {'runtime/bare':>13s} {'p99 runtime':>12s}")
    for r in rows:
        print(f"{r['path']:24s} {r['runtime']['median_us']:11.1f} {r['bare']['median_us']:9.1f} "
              f"{r['ratio_median']:13.2f} {r['runtime']['p99_us']:12.1f}")
        if "bare_iobinding" in r:
            print(f"{'  (io_binding floor)':24s} {'':11s} {r['bare_iobinding']['median_us']:9.1f} "
                  f"{r['ratio_vs_iobinding']:13.2f}")
    fastest = min(r["runtime"]["median_us"] for r in rows)
    for k in keras_rows:
        print(f"{k['path']:24s} {k['median_us']:11.1f} {'':9s} {'':13s} {k['p99_us']:12.1f}   "
              f"= {k['median_us'] / fastest:,.0f}x the fastest export")
    print(f"(numpy backend: {numpy_median:.1f} us per step)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
