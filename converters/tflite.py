"""ModelSpec -> ``.tflite`` (step or sequence graph; float32, dynamic, int8 or int16x8).

The graph is built from primitive ops (``tflite_graph``), never from the Keras layer,
and the TFLite converter runs in a child process (``tflite_child``): it has segfaulted
on recurrent graphs before (docs/toolchain.md), and a crash or hang must become one
``UserError`` line, not a dead CLI. ``build_in_process`` is the same conversion
without the child, for tests and callers that accept the risk.

The artifact describes itself twice: a metadata entry named ``edgelstm`` inside the
flatbuffer (JSON; read by the runtime without TensorFlow) and ``<file>.tflite.json``
beside it (written by ``converters.export`` after its check, from the description the
child embedded and hands back: the flatbuffer is parsed once per conversion). The
description records the engine's input/output order by signature name (``io_order``)
and the quantization (scale, zero point) of every input and output, so an engine
without signature support (TFLM) can still map tensors by name.

Quantized I/O types: ``int8`` has int8 inputs and outputs, ``int16x8`` int16 ones;
``dynamic`` keeps float32 I/O (weights int8, activations float at run time). The
runtime quantizes and dequantizes at the edges, so callers always use float32.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgelstm.core.artifact import INPUT_NAME, StepInterface, describe
from edgelstm.converters.sequences import synthetic_sequences
from edgelstm.core.errors import UserError, one_line
from edgelstm.runtime import reference
from edgelstm.runtime.ranges import ranges_from_samples
from edgelstm.runtime.crash_probe import killed_by
from edgelstm.core.metrics import all_finite
from edgelstm.runtime.tflite_info import METADATA_NAME, TFLiteFile, forbidden_ops, tensor_quantization
from edgelstm.core.spec import ModelSpec

QUANTIZATIONS = ("float32", "dynamic", "int8", "int16x8")
MODES = ("step", "sequence")
#: Quantizations traced in tflite_graph's integer-friendly form (``quantized=True``).
INTEGER_GRAPH = ("int8", "int16x8")
#: ... and those of them that subtract an input mean far from zero before the first kernel
#: (``tflite_graph.CENTRE_MIN_OFFSET``). Measured on the same trained models, folded vs
#: centred (docs/quantization.md, section 11): int16x8 mean error 1.2-17x lower on
#: PickupGesture, bleeding and JapaneseVowels (bleeding LSTM RMSE change +10.4 % -> +0.2 %);
#: int8 0.57-1.29x, no consistent gain (the centred input is rounded to int8 once more).
CENTRED_INPUT = ("int16x8",)
#: Quantizations whose integrating state (LSTM ``c``, GRU ``h``) crosses every step as
#: int16 instead of int8, the factors of its update on 16 bits too
#: (converters/tflite_cell_state.py). Measured on the same trained models (docs/
#: quantization.md, sections 12 and 13): with the state in int8 its rounding builds up
#: along the stream; int16 ``c`` took int8 LSTM class agreement PickupGesture 79 -> 94 %,
#: ACSF1 70 -> 83 % and the bleeding RMSE change +39 % -> +7 % (3 seeds, README table);
#: GRU: see section 13. Such graphs also
#: centre their input: with ``c`` no longer dominating, the folded mean's weight rounding
#: shows (bleeding seed 0: +5.0 % without centring, +3.2 % with). Step graphs only: a
#: sequence graph starts from a constant zero state, which the converter folds into the
#: first step (its ``c`` stays int8).
WIDE_CELL_STATE = ("int8",)

#: What the child leaves in its job directory: the model, then (last, so its presence
#: means both are complete) the description embedded in it.
CHILD_MODEL, CHILD_DESCRIPTION = "model.tflite", "description.json"
#: Seconds the child converter may take before it counts as hung.
DEFAULT_TIMEOUT = 600.0
TIMEOUT_ENV = "EDGELSTM_TFLITE_TIMEOUT"
#: Tests set this to SIGSEGV / SIGKILL / HANG / ERROR to make the child fail that way.
CRASH_ENV = "EDGELSTM_TEST_CONVERTER_CRASH"
#: Representative samples fed to the calibrator: enough to cover the state ranges of a
#: few sequences, few enough that calibration stays a few seconds.
CALIBRATION_SAMPLES = 400
#: int8 calibrates on central percentile ranges of what the float model visits, not on
#: min/max: the LSTM cell state ``c`` (state kind "c") and the input ``x``. ``c`` is not
#: bounded like ``h`` (a few units integrate to |c| of 10-15 while most stay below 3)
#: and crosses every step as int8, so its rounding step builds up along the stream;
#: inputs can hold rare spikes (ACSF1: 12 standard deviations). Measured on LSTM(32)
#: models (docs/quantization.md): ``c`` at p99 cut the carried h error from 0.079 to
#: 0.021 (ACSF1, 365 steps) and the mean output error 1.3-3x. The input percentile is a
#: compromise: p99.9 gained 3.7 points of int8 agreement on ACSF1 and lost 2.3 on
#: PickupGesture (whose gestures are the spikes); p99.99 +3.4 / -0.6 (LSTM and GRU,
#: 3 seeds). Beyond the range the runtime saturates the value. int16x8 keeps min/max
#: (with ``extreme_samples``): 16 bits resolve the full range.
CALIBRATION_PERCENTILES = {"int8": {"x": 99.99, "c": 99.0}}
#: Layer kinds whose int8 export missed the accuracy targets in
#: benchmarks/quantization_accuracy.py (README, "Quantization accuracy"; 3 seeds, 100
#: epochs, 1e-2 cosine): the export says so on stderr with what was measured, so nobody
#: ships that loss without knowing. kind -> (what, mean measured on PickupGesture / ACSF1
#: / bleeding, and on JapaneseVowels, where every cell met the targets). The misses are
#: on overfit models whose answers hang on small differences of state; better-trained
#: models of those datasets lost *more* to int8 (docs/quantization.md, sections 4, 10).
INT8_FRAGILE = {
    "lstm": ("int8 LSTM", "class agreement PickupGesture 94%, ACSF1 83%, JapaneseVowels 99.6%; bleeding RMSE +7.3%, "
                          "with the cell state in int16 as step graphs carry it; "
                          "79%, 70%, 99.5%, +39% with it in int8"),
    "gru": ("int8 GRU", "class agreement PickupGesture 95% (97% when trained with --recurrent-dropout 0.25), "
                        "ACSF1 72% (87% with dropout), JapaneseVowels 99.8%; bleeding RMSE +10%, with h in int16 "
                        "as step graphs carry it; 90%, 63%, 99.9%, +12% with it in int8"),
    "simple_rnn": ("int8 SimpleRNN (its whole state crosses every step as int8, no gate damps the rounding)",
                   "class agreement PickupGesture 89%, ACSF1 73%, JapaneseVowels 99.8%; bleeding RMSE +12%"),
}


# -- calibration -----------------------------------------------------------------------
def calibration_sequences(options, spec: ModelSpec) -> tuple[np.ndarray, bool]:
    """(calibration sequences, synthetic?): ``options.calibration`` as ``converters.export``
    settled it (held-out data already taken off), else synthetic inputs."""
    data = options.calibration
    synthetic = bool(options.calibration_synthetic) or data is None
    if data is None:
        data = synthetic_sequences(spec, n=24, steps=100)
    return _checked(np.asarray(data, np.float32), spec), synthetic


def _checked(data: np.ndarray, spec: ModelSpec) -> np.ndarray:
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[-1] != spec.input_size:
        raise UserError(f"calibration data has shape {data.shape}, expected (sequences, steps, {spec.input_size})")
    if not all_finite(data):
        raise UserError("calibration data holds NaN or inf")
    return data


def representative_samples(spec: ModelSpec, mode: str, seq_len: int | None,
                           sequences: np.ndarray, percentiles: dict | None = None) -> list[dict]:
    """What the calibrator sees: visited (x, every state) tuples, or windows of length T.

    ``percentiles`` (step mode), e.g. ``{"x": 99.9, "c": 99.0}``: clip the input ("x")
    and every state of that kind ("h", "c") to its central percentile range of all
    visited values, so the calibrated range is that rather than min/max (see
    ``CALIBRATION_PERCENTILES``)."""
    rng = np.random.default_rng(0)
    if mode == "sequence":
        stream = sequences.reshape(-1, spec.input_size)
        if len(stream) < seq_len:
            stream = np.resize(stream, (seq_len, spec.input_size))
        starts = np.arange(0, len(stream) - seq_len + 1, max(1, seq_len // 2))
        starts = rng.permutation(starts)[:64]
        return [{INPUT_NAME: stream[s:s + seq_len][None].astype(np.float32)} for s in starts]
    samples = []
    state = reference.zero_state(spec, len(sequences))
    for t in range(sequences.shape[1]):
        for b in range(len(sequences)):
            sample = {INPUT_NAME: sequences[b:b + 1, t]}
            sample.update({k: v[b:b + 1].copy() for k, v in state.items()})
            samples.append(sample)
        _, state = reference.step(spec, sequences[:, t], state)
    if percentiles:
        clip_to_percentiles(spec, samples, percentiles)
    if len(samples) > CALIBRATION_SAMPLES:
        keep = set(rng.choice(len(samples), CALIBRATION_SAMPLES, replace=False).tolist())
        keep |= extreme_samples(samples)
        samples = [samples[i] for i in sorted(keep)]
    return samples


def extreme_samples(samples: list[dict]) -> set[int]:
    """Indexes of the samples holding the minimum and maximum of every input and state.

    A random subset misses rare values: ACSF1's power spikes reach 12 standard
    deviations in a handful of its 36,500 steps, so 400 random samples calibrated the
    input to about +-1.2 and every spike saturated (int16x8 disagreed with float on 10%
    of a 10,000-step stream from its third step). The calibrator takes min/max over
    what it sees, so seeing these few samples gives the full range.
    """
    keep = set()
    for name in samples[0]:
        peaks = np.array([(s[name].min(), s[name].max()) for s in samples])
        keep.update((int(peaks[:, 0].argmin()), int(peaks[:, 1].argmax())))
    return keep


def clip_to_percentiles(spec: ModelSpec, samples: list[dict], percentiles: dict) -> None:
    """Clip ``samples`` in place: each named tensor to its [100 - p, p] percentiles over
    everything visited (computed before subsampling, so long streams count in full)."""
    kinds = {INPUT_NAME: "x", **{s.name: s.kind for s in StepInterface.from_spec(spec).states}}
    for name, kind in kinds.items():
        if kind not in percentiles:
            continue
        visited = np.concatenate([sample[name] for sample in samples])
        low, high = np.percentile(visited, [100.0 - percentiles[kind], percentiles[kind]])
        for sample in samples:
            sample[name] = np.clip(sample[name], low, high).astype(np.float32)


# -- conversion ------------------------------------------------------------------------
def resolve_seq_len(spec: ModelSpec, options) -> int | None:
    if options.mode != "sequence":
        return None
    seq_len = options.seq_len or spec.seq_len
    if not seq_len:
        raise UserError("sequence mode needs a window length: pass --seq-len T "
                        "(the model does not record the length it was trained on)")
    if int(seq_len) < 1:
        raise UserError(f"--seq-len must be at least 1, got {seq_len}")
    return int(seq_len)


def convert_in_process(spec: ModelSpec, quantize: str = "float32", mode: str = "step",
                       seq_len: int | None = None, samples: list[dict] | None = None,
                       wide_cell_state: bool | None = None) -> TFLiteFile:
    """Build the graph and run the TFLite converter here; returns the flatbuffer, parsed
    once for what follows (without the edgelstm metadata: see ``finish``).

    ``wide_cell_state``: carry the integrating state of every LSTM (``c``) and GRU (``h``)
    as int16 (default: for the quantizations in ``WIDE_CELL_STATE``; tests compare both)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise UserError(f"unknown TFLite quantization {quantize!r}; choose from {', '.join(QUANTIZATIONS)}")
    if wide_cell_state is None:
        wide_cell_state = quantize in WIDE_CELL_STATE and mode == "step" and _integrating_states(spec) > 0
    fn, module = _traced(spec, quantize, mode, seq_len, wide_cell_state)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-tensor weight scales: every gate already has its own FULLY_CONNECTED (so its
        # own scale), and per-channel parameters cost 12 bytes per output channel, which
        # alone would put an int8 LSTM(64) above 0.35x its float size. Measured on the
        # zoo: per-tensor is as accurate as per-channel for these gate-split graphs.
        converter._experimental_disable_per_channel = True
    if quantize in ("int8", "int16x8"):
        if not samples:
            raise UserError(f"{quantize} quantization needs calibration samples")
        converter.representative_dataset = lambda: iter(samples)
        if quantize == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = bytes(converter.convert())
        except Exception as exc:  # the converter raises many types; all mean "cannot convert"
            raise UserError(f"TFLite converter failed ({quantize}, {mode}): {one_line(exc)}") from None
    if wide_cell_state:
        data = _widened(spec, data)
    fb = TFLiteFile(data)
    shared = misquantized_biases(fb) if quantize in INTEGER_GRAPH else []
    if shared:  # the converter merged equal constants: say so rather than ship wrong answers
        raise UserError(f"internal error: the {quantize} graph shares bias tensors between FULLY_CONNECTED "
                        f"ops of different scales ({', '.join(shared)})")
    bad = forbidden_ops(fb.all_operators)
    if bad:
        raise UserError(f"the TFLite graph contains ops no edge engine runs: {', '.join(bad)}")
    return fb


def _traced(spec: ModelSpec, quantize: str, mode: str, seq_len: int | None, wide_cell_state: bool):
    """(concrete function, module) of the graph to convert."""
    from edgelstm.converters import tflite_graph

    # Integer graphs round every intermediate tensor: trace the form with fewer rounding
    # points (input scaling folded into the first kernel, biases inside the FCs).
    quantized, centre = quantize in INTEGER_GRAPH, quantize in CENTRED_INPUT or wide_cell_state
    if mode == "step":
        return tflite_graph.step_function(spec, quantized=quantized, centre=centre)
    if mode == "sequence":
        if not seq_len:
            raise UserError("sequence mode needs --seq-len")
        return tflite_graph.sequence_function(spec, seq_len, quantized=quantized, centre=centre)
    raise UserError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


def _widened(spec: ModelSpec, data: bytes) -> bytes:
    from edgelstm.converters.tflite_cell_state import widen_cell_state

    data, chains = widen_cell_state(data)
    layers = _integrating_states(spec)
    if chains != layers:  # the traced cell changed shape: say so rather than ship an int8 state
        raise UserError(f"internal error: found the state update of {chains} of {layers} LSTM / GRU "
                        "layers in the int8 graph")
    return data


def misquantized_biases(fb: TFLiteFile) -> list[str]:
    """Names of non-zero bias tensors that FULLY_CONNECTEDs with different input x weight
    scales share. A quantized bias is stored on one such scale, so it is wrong for every
    other FC that reads it; the converter shares one when it merges equal constants (a
    GRU's z/r biases under recurrent_dropout did this before ``tflite_graph.gru`` summed
    them)."""
    scales: dict[int, set] = {}
    for name, inputs in zip(fb.operators, fb.operator_inputs):
        if name != "FULLY_CONNECTED" or len(inputs) < 3 or inputs[2] < 0:
            continue
        x, w = (tensor_quantization(fb.tensors[i]) for i in inputs[:2])
        if x is not None and w is not None:
            scales.setdefault(inputs[2], set()).add(round(float(np.log2(x[0] * w[0])), 3))
    return [fb.tensors[b]["name"] for b, seen in scales.items()
            if len(seen) > 1 and any(fb.buffer_bytes(fb.tensors[b]["buffer"]))]


def _integrating_states(spec: ModelSpec) -> int:
    """Layers with a state that integrates (``s = gate*s + new``): every LSTM (``c``) and
    every GRU (``h``)."""
    return sum(layer.kind in ("lstm", "gru") for layer in spec.layers)


def io_description(fb: TFLiteFile) -> dict:
    """Engine I/O order and quantization, by signature name, of the converted flatbuffer."""
    ins, outs = fb.io_tensors()

    def entry(t):
        out = {"name": t["name"], "position": t["position"], "dtype": t["dtype"], "shape": t["shape"]}
        quantization = tensor_quantization(t)
        if quantization:
            out["scale"], out["zero_point"] = quantization
        return out

    return {"signature": next(iter(fb.signatures), None),
            "inputs": [entry(t) for t in ins], "outputs": [entry(t) for t in outs],
            "ops": sorted(set(fb.all_operators))}


def embed_metadata(data: bytes, desc: dict) -> bytes:
    """``data`` with the description as the ``edgelstm`` metadata entry (replacing any)."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    # Intermediate tensor names are long TF scope paths ("StatefulPartitionedCall/...")
    # that nothing reads; short ones save ~10% of a small quantized model.
    for sg in model.subgraphs:
        keep = set(sg.inputs) | set(sg.outputs)
        for k, tensor in enumerate(sg.tensors):
            if k not in keep:
                tensor.name = f"t{k}"
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(json.dumps(desc, sort_keys=True).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema_fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def finish(spec: ModelSpec, fb: TFLiteFile, quantize: str, mode: str, seq_len: int | None,
           calibration: dict | None = None) -> tuple[bytes, dict]:
    """The converted flatbuffer's bytes with the description embedded, and that description."""
    desc = describe(spec, "tflite", quantize=quantize, mode=mode, seq_len=seq_len,
                    tflite=io_description(fb), calibration=calibration)
    return embed_metadata(fb.data, desc), desc


def build(spec: ModelSpec, quantize: str = "float32", mode: str = "step", seq_len: int | None = None,
          samples: list[dict] | None = None, calibration: dict | None = None,
          wide_cell_state: bool | None = None) -> tuple[bytes, dict]:
    """Convert and embed the description, all in this process (what the child runs);
    returns the bytes and the description embedded in them."""
    crash = os.environ.get(CRASH_ENV)
    if crash:
        _simulate_failure(crash)
    fb = convert_in_process(spec, quantize, mode, seq_len, samples, wide_cell_state)
    return finish(spec, fb, quantize, mode, seq_len, calibration)


def build_in_process(spec: ModelSpec, quantize: str = "float32", mode: str = "step",
                     seq_len: int | None = None, samples: list[dict] | None = None,
                     calibration: dict | None = None, wide_cell_state: bool | None = None) -> bytes:
    """``build``'s bytes alone."""
    return build(spec, quantize, mode, seq_len, samples, calibration, wide_cell_state)[0]


def _simulate_failure(how: str) -> None:
    how = how.upper()
    if how == "HANG":
        import time

        time.sleep(3600)
    elif how == "ERROR":
        raise UserError("simulated converter error")
    else:
        os.kill(os.getpid(), getattr(signal, how, signal.SIGSEGV))


# -- the child process -----------------------------------------------------------------
def convert_in_child(spec: ModelSpec, quantize: str, mode: str, seq_len: int | None,
                     samples: list[dict] | None, calibration: dict | None = None,
                     timeout: float | None = None) -> tuple[bytes, dict]:
    """``build`` in a fresh Python; crashes and hangs become UserError."""
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    what = f"{spec.name} ({quantize}, {mode} mode)"
    with tempfile.TemporaryDirectory(prefix="edgelstm-tflite-") as tmp:
        tmp = Path(tmp)
        spec.save_npz(tmp / "spec.npz")
        if samples:
            names = list(samples[0])
            np.savez(tmp / "samples.npz", **{n: np.concatenate([s[n] for s in samples]) for n in names})
        (tmp / "job.json").write_text(json.dumps({
            "quantize": quantize, "mode": mode, "seq_len": seq_len, "calibration": calibration,
        }))
        cmd = [sys.executable, "-m", "edgelstm.converters.tflite_child", str(tmp)]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise UserError(f"cannot start the TFLite converter process ({exc.strerror})") from None
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise UserError(f"TFLite converter hung (no result after {timeout:g} s) while converting {what}") from None
        death = killed_by(proc.returncode)
        if death:
            raise UserError(f"TFLite converter crashed ({death}) while converting {what}")
        error_file = tmp / "error.txt"
        if proc.returncode != 0 or not (tmp / CHILD_DESCRIPTION).is_file():
            if error_file.is_file():
                raise UserError(error_file.read_text().strip())
            lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
            tail = lines[-1][:300] if lines else "no output"
            raise UserError(f"TFLite converter failed (exit status {proc.returncode}) while converting {what}: {tail}")
        return (tmp / CHILD_MODEL).read_bytes(), json.loads((tmp / CHILD_DESCRIPTION).read_text())


def load_job(tmp: Path):
    """The child's side of the hand-over written by ``convert_in_child``."""
    spec = ModelSpec.load_npz(tmp / "spec.npz")
    job = json.loads((tmp / "job.json").read_text())
    samples = None
    if (tmp / "samples.npz").is_file():
        with np.load(tmp / "samples.npz") as arrays:
            cols = {k: arrays[k] for k in arrays.files}
        n = len(next(iter(cols.values())))
        samples = [{k: v[i:i + 1] for k, v in cols.items()} for i in range(n)]
    return spec, job, samples


# -- export ----------------------------------------------------------------------------
def export(spec: ModelSpec, out_dir: Path, options, warn) -> tuple[list[Path], dict]:
    """Write ``<basename>.tflite`` and its ``.json``.

    int8 / int16x8 calibrate on ``options.calibration`` (``converters.export`` has taken
    the held-out part off already); ``warn`` receives what the caller should know.
    """
    quantize, mode = options.quantize, options.mode
    seq_len = resolve_seq_len(spec, options)
    samples = None
    calibration = None
    if quantize in ("int8", "int16x8"):
        calib, synthetic = calibration_sequences(options, spec)
        samples = representative_samples(spec, mode, seq_len, calib, CALIBRATION_PERCENTILES.get(quantize))
        calibration = {"sequences": int(len(calib)), "samples": len(samples), "synthetic": synthetic,
                       "source": options.calibration_source,
                       # what the runtime counts inputs / pinned outputs against (runtime/ranges.py)
                       **ranges_from_samples(spec, samples, mode),
                       "percentiles": CALIBRATION_PERCENTILES.get(quantize)}
    if quantize == "int8":
        for kind in sorted({layer.kind for layer in spec.layers} & set(INT8_FRAGILE)):
            what, measured = INT8_FRAGILE[kind]
            warn(f"warning: {what} missed the int8 targets (98% class agreement with float, 5% RMSE "
                 f"change) on three of the four harder benchmark datasets ({measured}); check this model's "
                 "loss below, or use int16x8")
    data, desc = convert_in_child(spec, quantize, mode, seq_len, samples, calibration, options.timeout)
    path = Path(out_dir) / f"{options.basename}.tflite"
    path.write_bytes(data)
    return [path], desc
