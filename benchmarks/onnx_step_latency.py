"""Per-step latency: the edgelstm runtime (StatefulModel.step over the onnxruntime backend)
against a bare ``session.run`` loop, on the same LSTM(64) float32 step model and inputs.

The ratio is the runtime's overhead (input checks, state bookkeeping, name mapping);
a later issue requires it to stay at or below 1.25. Both loops use one intra-op thread
and run alternately in rounds, so drift of a noisy machine hits both alike.

    python benchmarks/onnx_step_latency.py [--steps 5000] [--rounds 5] [--units 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np


def lstm_spec(units: int, features: int, outputs: int = 4):
    from edgelstm.spec import LayerSpec, ModelSpec

    rng = np.random.default_rng(0)

    def w(*shape, scale=1.0):
        return (scale * rng.uniform(-1, 1, shape) / np.sqrt(shape[0])).astype(np.float32)

    return ModelSpec(features, [
        LayerSpec("lstm", units, {"kernel": w(features, 4 * units), "recurrent_kernel": w(units, 4 * units, scale=0.8),
                                  "bias": w(4 * units)},
                  activation="tanh", recurrent_activation="sigmoid", return_sequences=False),
        LayerSpec("dense", outputs, {"kernel": w(units, outputs), "bias": w(outputs)}),
    ], name=f"lstm{units}_bench")


def bare_loop(session, xs: np.ndarray, state_names: list[str], units: int) -> np.ndarray:
    """The lower bound: session.run with a feed dict, states carried by hand."""
    outputs = ["y"] + [n + "_next" for n in state_names]
    state = [np.zeros((1, units), np.float32) for _ in state_names]
    times = np.empty(len(xs))
    clock = time.perf_counter_ns
    for t, x in enumerate(xs):
        start = clock()
        feed = {"x": x}
        feed.update(zip(state_names, state))
        y, *state = session.run(outputs, feed)
        times[t] = clock() - start
    return times


def iobinding_loop(session, xs: np.ndarray, state_names: list[str], units: int, outputs: int) -> np.ndarray:
    """The engine's floor (informational): inputs and outputs bound once to fixed buffers."""
    io = session.io_binding()
    x_buf = np.zeros(xs.shape[1:], np.float32)
    state = [np.zeros((1, units), np.float32) for _ in state_names]
    io.bind_cpu_input("x", x_buf)
    for name, buf in zip(state_names, state):
        io.bind_cpu_input(name, buf)
    y = np.zeros((1, outputs), np.float32)
    io.bind_output("y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    for name, buf in zip(state_names, state):  # in place: the LSTM op reads h/c before writing
        io.bind_output(name + "_next", "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
    times = np.empty(len(xs))
    clock = time.perf_counter_ns
    for t, x in enumerate(xs):
        start = clock()
        x_buf[...] = x
        session.run_with_iobinding(io)
        times[t] = clock() - start
    return times


def runtime_loop(model, xs: np.ndarray) -> np.ndarray:
    model.reset()
    times = np.empty(len(xs))
    clock = time.perf_counter_ns
    for t, x in enumerate(xs):
        start = clock()
        model.step(x)
        times[t] = clock() - start
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per round and loop")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of both loops")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps before each loop")
    parser.add_argument("--units", type=int, default=64, help="LSTM units")
    parser.add_argument("--features", type=int, default=6, help="input features")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from edgelstm import runtime
    from edgelstm.converters import ExportOptions, export

    spec = lstm_spec(args.units, args.features)
    state_names = [s.name for s in spec.state_specs()]
    with tempfile.TemporaryDirectory() as tmp:
        path = export(spec, "onnx", tmp, ExportOptions(basename="lstm"))[0]
        model = runtime.load(path, backend="onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(1)
    xs = rng.uniform(-1, 1, (args.steps, 1, args.features)).astype(np.float32)
    warm = xs[: args.warmup]
    bare, ours, floor = [], [], []
    for _ in range(args.rounds):
        bare_loop(session, warm, state_names, args.units)
        bare.append(bare_loop(session, xs, state_names, args.units))
        runtime_loop(model, warm[:, 0, :])
        ours.append(runtime_loop(model, xs[:, 0, :]))
        iobinding_loop(session, warm, state_names, args.units, spec.output_size)
        floor.append(iobinding_loop(session, xs, state_names, args.units, spec.output_size))
    bare_us, ours_us, floor_us = (np.concatenate(t) / 1e3 for t in (bare, ours, floor))

    result = {
        "model": f"LSTM({args.units}) + Dense(4), {args.features} features, float32 step graph, 1 thread",
        "onnxruntime": ort.__version__,
        "steps": args.steps * args.rounds,
        "bare_session_run_us": {"median": float(np.median(bare_us)), "p99": float(np.percentile(bare_us, 99))},
        "runtime_step_us": {"median": float(np.median(ours_us)), "p99": float(np.percentile(ours_us, 99))},
        "bare_iobinding_us": {"median": float(np.median(floor_us)), "p99": float(np.percentile(floor_us, 99))},
    }
    result["ratio_median"] = result["runtime_step_us"]["median"] / result["bare_session_run_us"]["median"]
    result["ratio_p99"] = result["runtime_step_us"]["p99"] / result["bare_session_run_us"]["p99"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["model"], f"(onnxruntime {result['onnxruntime']}, {result['steps']} steps each)")
        for label, key in (("bare session.run", "bare_session_run_us"), ("StatefulModel.step", "runtime_step_us"),
                           ("(bare io_binding)", "bare_iobinding_us")):
            r = result[key]
            print(f"  {label:20s} median {r['median']:7.1f} us   p99 {r['p99']:7.1f} us")
        print(f"  ratio runtime / bare: median {result['ratio_median']:.3f}, p99 {result['ratio_p99']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
