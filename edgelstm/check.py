"""``edgelstm check``: how far an exported artifact drifts from the Keras model over a long stream.

The same stream goes through the Keras model (the reference) and through the artifact,
step by step through the runtime, from a zero state. Keras answers for every prefix at
once through its *streaming twin*: the same layers and weights with
``return_sequences=True`` on every recurrent layer, so its output at step t is what the
original model returns for the first t+1 samples (recurrent layers are causal).

Long streams: the data (a CSV, a bundled dataset or the data recorded with the model)
is laid end to end as one stream; when it is shorter than ``--steps`` it is repeated.
The state therefore carries across the joins, which is what a device sees when it runs
for hours, and is exactly where quantization error could accumulate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.core.metrics import predicted_class
from edgelstm.core.errors import MissingExtraError, UserError, require_file
from edgelstm.runtime.ranges import range_line

DEFAULT_STEPS = 2000
DEFAULT_SEGMENTS = 10
#: The replay target: the second pass's mean error at most this multiple of the first's.
REPLAY_MAX_RATIO = 1.2
RECURRENT_CLASSES = ("LSTM", "GRU", "SimpleRNN")


# -- the reference ----------------------------------------------------------------------

def streaming_twin(model):
    """The Keras model with ``return_sequences=True`` on every recurrent layer and a
    free time dimension, sharing no state with the original (weights are copied)."""
    from edgelstm.keras_import import _linear_layers, _single_shape, import_keras

    keras = import_keras()
    features = int(_single_shape(model.input_shape, "input")[-1])
    # TimeDistributed(Dense) runs as the Dense itself (Dense on a 3-D input is per
    # timestep, same weights): Keras maps TimeDistributed over time ~50x slower.
    layers = [layer.layer if type(layer).__name__ == "TimeDistributed" else layer
              for layer in _linear_layers(model) if type(layer).__name__ != "InputLayer"]
    clones = []
    for layer in layers:
        config = layer.get_config()
        if type(layer).__name__ in RECURRENT_CLASSES:
            config["return_sequences"] = True
        clones.append(type(layer).from_config(config))
    twin = keras.Sequential([keras.Input((None, features))] + clones, name=f"{model.name}_streaming")
    for clone, layer in zip(clones, layers):
        clone.set_weights(layer.get_weights())
        # An adapted Normalization keeps its statistics as weights and derives the mean
        # and variance it uses from them only here (Keras' loader calls it after loading).
        if hasattr(clone, "finalize_state"):
            clone.finalize_state()
    return twin


# -- the data -----------------------------------------------------------------------------

def long_stream(sequences: np.ndarray, steps: int) -> np.ndarray:
    """``sequences`` (N, T, F) end to end as one stream, repeated up to ``steps`` rows."""
    flat = np.asarray(sequences, np.float32).reshape(-1, sequences.shape[-1])
    if len(flat) == 0:
        raise UserError("the data has no rows")
    reps = -(-steps // len(flat))
    return np.tile(flat, (reps, 1))[:steps]


def load_data(spec, model_path: Path, data: Path | None, dataset: str | None) -> tuple[np.ndarray, str, bool]:
    """(sequences (N, T, F), where they came from, synthetic?)."""
    from edgelstm import calibration, datasets

    if data is not None and dataset is not None:
        raise UserError("give --data or --dataset, not both")
    if dataset is not None:
        ds = datasets.load(dataset)
        if ds.features != spec.input_size:
            raise UserError(f"dataset {ds.name} has {ds.features} features, the model takes {spec.input_size}")
        return ds.x_test, f"bundled dataset {ds.name} (held-out part)", False
    if data is not None:
        # A CSV is one stream already: keep its rows in order, no windows.
        window = 1 << 62 if data.suffix.lower() == ".csv" else None
        got = calibration.load_file(data, spec.input_size, window)
        return got.heldout[0], str(data), False
    got = calibration.resolve(spec, model_path)
    return got.heldout[0], got.source, got.synthetic


# -- the comparison -------------------------------------------------------------------------

def error_growth(err: np.ndarray, segments: int) -> dict:
    """Error per stream segment and its trend: does the error drift as the stream goes on?

    ``err``: (T, outputs) absolute errors. ``slope_per_1000_steps`` is the least-squares
    slope of the segments' mean error against their position.
    """
    t = len(err)
    segments = max(1, min(segments, t))
    edges = np.linspace(0, t, segments + 1).astype(int)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        seg = err[a:b]
        rows.append({"start": int(a), "stop": int(b), "max_abs_err": float(seg.max()),
                     "mean_abs_err": float(seg.mean())})
    means = np.array([r["mean_abs_err"] for r in rows])
    centers = np.array([(r["start"] + r["stop"]) / 2 for r in rows])
    slope = float(np.polyfit(centers, means, 1)[0] * 1000) if segments > 1 else 0.0
    first = means[0]
    return {
        "segments": rows,
        "slope_per_1000_steps": slope,
        "last_over_first": float(means[-1] / first) if first > 0 else (1.0 if means[-1] == 0 else float("inf")),
    }


def first_nonfinite_step(y: np.ndarray) -> int | None:
    """The first step (row) of ``y`` (T, O) holding NaN or inf, or None."""
    bad = ~np.isfinite(y).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def compare(want: np.ndarray, got: np.ndarray, task: str, segments: int = DEFAULT_SEGMENTS) -> dict:
    """Figures of the artifact's streamed outputs ``got`` against the reference ``want`` (T, O).

    A reference that is NaN/inf somewhere has diverged (e.g. an unbounded relu state
    over a long stream): every figure after that step compares nothing, so the report
    names the step (``reference_diverged_at``) and ``check_thresholds`` fails it.
    """
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    out = {
        "reference_diverged_at": first_nonfinite_step(want),
        "artifact_nonfinite_at": first_nonfinite_step(got),
        "steps": int(len(want)),
        "outputs": int(want.shape[1]),
        "max_abs_err": float(err.max()),
        "mean_abs_err": float(err.mean()),
        "max_abs_err_per_output": [float(v) for v in err.max(axis=0)],
        "reference_range": [float(want.min()), float(want.max())],
        "growth": error_growth(err, segments),
    }
    if task == "classification":
        same = predicted_class(want) == predicted_class(got)
        out["agreement"] = float(same.mean())
        out["first_disagreement_step"] = int(np.argmin(same)) if not same.all() else None
    return out


def chunks(stream: np.ndarray, every: int | None) -> list[np.ndarray]:
    """``stream`` cut into pieces of ``every`` steps (the last may be shorter); one piece
    when ``every`` is None."""
    if not every:
        return [stream]
    return [stream[a:a + every] for a in range(0, len(stream), every)]


def _batched(fn, pieces: list[np.ndarray]) -> np.ndarray:
    """``fn`` (N, T, F) -> (N, T, O) over equal-length pieces at once, the short tail alone;
    the outputs laid end to end again as (steps, O)."""
    full = [p for p in pieces if len(p) == len(pieces[0])]
    out = fn(np.stack(full))
    outs = [out.reshape(-1, out.shape[-1])]
    if len(full) < len(pieces):
        outs.append(fn(pieces[-1][None])[0])
    return np.concatenate(outs)


def validate_reset_every(text: str | None) -> None:
    """``--reset-every`` is a positive number of steps or ``window`` (said before the long part)."""
    if text is not None and text != "window" and not (text.isdigit() and int(text) > 0):
        raise UserError(f"--reset-every takes a positive number of steps or 'window', not {text!r}")


def run_check(model_path: Path, artifact: Path, data: Path | None = None, dataset: str | None = None,
              steps: int = DEFAULT_STEPS, segments: int = DEFAULT_SEGMENTS, backend: str = "auto",
              warn=None, reset_every: int | str | None = None, replay: bool = False) -> tuple[dict, np.ndarray]:
    """Stream the data through both; returns (report, absolute errors (T, outputs)).

    ``reset_every``: both start from a zero state again every N steps (``"window"``: the
    model's own window length), the way a windowed model is used; default: never. ``replay``: the stream
    is played twice end to end with the state carried across (see ``replay_drift``).
    """
    from edgelstm.keras_import import KERAS_SUFFIXES, load_model_spec
    from edgelstm.runtime import load

    model_path, artifact = Path(model_path), require_file(artifact)  # before the long part
    suffix = model_path.suffix.lower()
    if suffix not in KERAS_SUFFIXES + (".npz",):
        raise UserError(f"{model_path}: the reference must be a Keras model (.keras/.h5) or an edgelstm .npz")
    spec = load_model_spec(model_path)
    sequences, source, synthetic = load_data(spec, model_path, data, dataset)
    if synthetic and warn is not None:
        warn("no real data (give --data or --dataset); streaming synthetic inputs")
    pieces, reset_every = _pieces(spec, long_stream(sequences, steps), reset_every, replay)
    model = load(artifact, backend=backend, on_range=lambda summary: None)  # reported below
    if model.input_size != spec.input_size or model.output_size != spec.output_size:
        raise UserError(f"{artifact} takes {model.input_size} inputs and gives {model.output_size} outputs; "
                        f"{model_path} takes {spec.input_size} and gives {spec.output_size}: not the same model")
    got = []
    for piece in pieces:
        model.reset()
        got.append(model.run(piece))
    got = np.concatenate(got)
    want, ref_name = _reference_outputs(spec, model_path, pieces)
    report = compare(want, got, spec.task, segments)
    if replay:
        report["replay"] = replay_drift(np.abs(got.astype(np.float64) - want.astype(np.float64)))
    report.update({
        "model": str(model_path), "artifact": str(artifact), "reference": ref_name,
        "backend": model.backend.name, "format": model.description.get("format"),
        "quantize": model.description.get("quantize"), "task": spec.task,
        "data": source, "synthetic_data": synthetic,
        "data_rows": int(np.prod(sequences.shape[:-1])),
        "repeated": bool(np.prod(sequences.shape[:-1]) < steps),
        "calibrated_range": model.range_summary(),
        "reset_every": int(reset_every) if reset_every else None,
    })
    return report, np.abs(got.astype(np.float64) - want.astype(np.float64))


def _pieces(spec, stream: np.ndarray, reset_every: int | str | None, replay: bool) -> tuple[list, int | None]:
    """The stream cut where both start from a zero state again, and that step count."""
    if replay:
        if reset_every:
            raise UserError("--max-replay-ratio carries the state across the replay; it cannot be combined "
                            "with --reset-every")
        stream = replay_stream(stream)
    if reset_every == "window":
        if not spec.seq_len:
            raise UserError("--reset-every window: the model does not record its window length; give a number")
        reset_every = spec.seq_len
    return chunks(stream, int(reset_every) if reset_every else None), reset_every


def _reference_outputs(spec, model_path: Path, pieces: list) -> tuple[np.ndarray, str]:
    """What the reference answers for ``pieces`` laid end to end, and its name: Keras
    itself for a Keras model, the numpy reference for an .npz spec."""
    from edgelstm.keras_import import KERAS_SUFFIXES, load_keras_model
    from edgelstm.runtime import reference

    if model_path.suffix.lower() in KERAS_SUFFIXES:
        # One predict per batch of pieces runs the recurrence as a compiled graph (seconds for
        # thousands of steps, where calling the model step by step would take minutes).
        twin = streaming_twin(load_keras_model(model_path))
        return _batched(lambda xs: np.asarray(twin.predict(xs, verbose=0, batch_size=len(xs))), pieces), "keras"
    return _batched(lambda xs: reference.run_sequence(spec, xs)[0], pieces), "numpy reference"


# -- replay: drift that is not the signal's own amplitude ---------------------------------

def replay_stream(stream: np.ndarray) -> np.ndarray:
    """``stream`` twice end to end: the second pass sees exactly the inputs of the first."""
    return np.concatenate([stream, stream])


def replay_drift(err: np.ndarray) -> dict:
    """Mean error of the second pass of a replayed stream against the first.

    ``err``: (2T, outputs) absolute errors of ``replay_stream`` output. Error per segment
    of one pass rises and falls with the signal (a loud stretch has larger quantization
    error), so its slope confounds drift with amplitude. Replaying the same inputs with
    the state carried across removes the signal from the comparison: without drift the
    second pass has the first pass's error (ratio ~1); state error that builds up shows
    as a ratio above 1. A first pass without error counts as ratio 1 only if the second
    has none either.
    """
    half = len(err) // 2
    first, second = float(err[:half].mean()), float(err[half:].mean())
    if not (np.isfinite(first) and np.isfinite(second)):
        ratio = float("nan")
    elif first > 0:
        ratio = second / first
    else:
        ratio = 1.0 if second == 0 else float("inf")
    return {"steps_per_pass": int(half), "first_pass_mean_abs_err": first,
            "second_pass_mean_abs_err": second, "ratio": ratio}


def check_replay(report: dict, max_ratio: float) -> list[str]:
    """The replay threshold: NaN and inf fail, like every threshold."""
    replay = report["replay"]
    ok = bool(np.isfinite(replay["ratio"]) and replay["ratio"] <= max_ratio)
    replay.update({"max_ratio": max_ratio, "ok": ok})
    if ok:
        return []
    return [f"replay: second-pass mean error is {replay['ratio']:.3g}x the first, above --max-replay-ratio "
            f"{max_ratio:g}"]


def format_replay(report: dict) -> list[str]:
    r = report.get("replay")
    if r is None:
        return []
    return [f"  replay     {r['steps_per_pass']} steps played twice, state carried: mean error "
            f"{r['first_pass_mean_abs_err']:.3g} then {r['second_pass_mean_abs_err']:.3g} ({r['ratio']:.3f}x)"]


def check_thresholds(report: dict, max_abs_err: float | None, min_agreement: float | None) -> list[str]:
    """The thresholds ``report`` breaks, as short reasons. Comparisons are written so
    that NaN and inf fail (``not err <= bar``), and a diverged reference always fails:
    with nothing to compare against, no threshold can be said to hold."""
    broken = []
    diverged = report.get("reference_diverged_at")
    if diverged is not None:
        broken.append(f"the reference itself diverges (NaN/inf from step {diverged}), so the comparison means "
                      "nothing: use shorter or bounded data (--steps, --data)")
    if max_abs_err is not None and not report["max_abs_err"] <= max_abs_err:
        broken.append(f"max abs error {report['max_abs_err']:.3g} exceeds --max-abs-err {max_abs_err:g}")
    if min_agreement is not None:
        if "agreement" not in report:
            raise UserError("--min-agreement needs a classifier (a softmax/sigmoid head with several outputs)")
        if not (np.isfinite(report["agreement"]) and report["agreement"] >= min_agreement):
            broken.append(f"class agreement {report['agreement']:.4f} is below --min-agreement {min_agreement:g}")
    report["thresholds"] = {"max_abs_err": max_abs_err, "min_agreement": min_agreement, "ok": not broken}
    return broken


def format_report(report: dict) -> list[str]:
    g = report["growth"]
    per_segment = " ".join(f"{seg['mean_abs_err']:.2g}" for seg in g["segments"])
    lines = [
        f"{report['artifact']} ({report['format']} {report['quantize']}, backend {report['backend']}) "
        f"against {report['reference']} {report['model']}",
        f"  stream     {report['steps']} steps from {report['data']}"
        + (f" ({report['data_rows']} rows, repeated end to end)" if report["repeated"] else "")
        + (f", state reset every {report['reset_every']} steps" if report.get("reset_every") else ""),
        f"  abs error  max {report['max_abs_err']:.3g}   mean {report['mean_abs_err']:.3g}   "
        f"(reference outputs span {report['reference_range'][0]:.3g} .. {report['reference_range'][1]:.3g})",
        f"  drift      mean error per segment {per_segment}",
        f"             slope {g['slope_per_1000_steps']:+.3g} per 1000 steps, last/first segment "
        f"{g['last_over_first']:.2f}x",
    ]
    if report.get("reference_diverged_at") is not None:
        lines.insert(2, f"  reference  DIVERGES: NaN/inf from step {report['reference_diverged_at']} "
                        "(the error figures compare nothing from there on)")
    elif report.get("artifact_nonfinite_at") is not None:
        lines.insert(2, f"  artifact   gives NaN/inf from step {report['artifact_nonfinite_at']} "
                        "where the reference is finite")
    if report.get("calibrated_range"):
        lines.append("  " + range_line(report["calibrated_range"]))
    if "agreement" in report:
        first = report.get("first_disagreement_step")
        lines.append(f"  classes    agreement {100 * report['agreement']:.2f}% of steps"
                     + (f" (first disagreement at step {first})" if first is not None else ""))
    return lines


def require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("matplotlib", "plot", "--plot") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_errors(err: np.ndarray, report: dict, path: str | Path) -> Path:
    """Absolute error over stream position, one line per output, as a PNG."""
    plt = require_matplotlib()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    steps = np.arange(len(err))
    for k in range(err.shape[1]):
        ax.plot(steps, err[:, k], linewidth=0.7, label=f"output {k}")
    ax.set_xlabel("stream position (step)")
    ax.set_ylabel("|artifact - reference|")
    ax.set_title(f"{Path(report['artifact']).name} ({report['quantize']}) against {report['reference']}",
                 fontsize=10)
    if err.shape[1] <= 12:
        ax.legend(fontsize=8, loc="upper left", ncol=min(4, err.shape[1]))
    ax.grid(alpha=0.3)
    return save_png(plt, fig, path)


def save_png(plt, fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG and free it; an unwritable path is one line."""
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return path
