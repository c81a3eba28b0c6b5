"""How far an exported artifact is from the float reference, streamed step by step.

Used by ``export`` (what quantization lost), ``demo`` (the table) and ``check``. Works
on the device side too: it needs only the runtime and numpy, not TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.runtime import load, reference
from edgelstm.runtime.ranges import range_line
from edgelstm.core.metrics import all_finite, class_accuracy, predicted_class
from edgelstm.core.spec import ModelSpec


def stream_outputs(model, sequences: np.ndarray) -> np.ndarray:
    """Stream each sequence from a fresh state, all sequences side by side as streams.

    ``model`` is a StatefulModel with ``streams == len(sequences)``; returns
    (N, T, outputs): the output after every step.
    """
    model.reset()
    return model.run(np.asarray(sequences, np.float32))


def compare_artifact(spec: ModelSpec, artifact: str | Path, sequences: np.ndarray,
                     targets: np.ndarray | None = None, backend: str = "auto") -> dict:
    """Run ``sequences`` (N, T, F) through the artifact and through the numpy reference.

    Returns max/mean abs error over every streamed step, and at the final step:
    class agreement (classification) or RMSE against ``targets`` for both
    (regression, when targets are given).
    """
    sequences = np.asarray(sequences, np.float32)
    model = load(artifact, backend=backend, streams=len(sequences), on_range=lambda summary: None)
    got = stream_outputs(model, sequences)
    want, _ = reference.run_sequence(spec, sequences)
    out = summarize(spec, want, got, targets)
    if model.range_summary() is not None:  # quantized: what the calibrated ranges did not cover
        out["calibrated_range"] = model.range_summary()
    return out


def summarize(spec: ModelSpec, want: np.ndarray, got: np.ndarray, targets: np.ndarray | None = None) -> dict:
    """Error figures of ``got`` against ``want``, both (N, T, outputs) streamed outputs."""
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    out = {
        # relu states can grow without bound: then the float answer itself is NaN/inf
        "reference_diverged": not all_finite(want),
        "max_abs_err": float(err.max()),
        "mean_abs_err": float(err.mean()),
        "steps": int(want.shape[1]),
        "sequences": int(want.shape[0]),
    }
    last_want, last_got = want[:, -1, :], got[:, -1, :]
    if spec.task == "classification":
        cls_want, cls_got = predicted_class(last_want), predicted_class(last_got)
        out["agreement"] = float(np.mean(cls_want == cls_got))
        if targets is not None and np.ndim(targets) == 1:
            out["accuracy_reference"] = class_accuracy(last_want, targets)
            out["accuracy"] = class_accuracy(last_got, targets)
    elif targets is not None:
        t = np.asarray(targets, np.float64).reshape(last_want.shape)
        ref = float(np.sqrt(np.mean((last_want - t) ** 2)))
        new = float(np.sqrt(np.mean((last_got - t) ** 2)))
        out["rmse_reference"] = ref
        out["rmse"] = new
        out["rmse_change"] = (new - ref) / ref if ref > 0 else (0.0 if new == ref else float("inf"))
    return out


def format_loss(report: dict) -> str:
    """One line saying what an export lost against the float reference."""
    shape = f" over {report['sequences']} sequences x {report['steps']} steps"
    if report.get("reference_diverged"):
        return "not checked: the float reference itself diverges (NaN/inf) on these inputs" + shape
    if not np.isfinite(report["max_abs_err"]):
        return "max |export - float| is not finite: the export gives NaN/inf where the float reference does not" + shape
    parts = [f"max |export - float| over every step = {report['max_abs_err']:.3g}"]
    if "agreement" in report:
        parts.append(f"class agreement {100 * report['agreement']:.1f}%")
    if "rmse_change" in report:
        parts.append(f"RMSE {report['rmse_reference']:.4g} -> {report['rmse']:.4g} "
                     f"({100 * report['rmse_change']:+.2f}%)")
    line = ", ".join(parts) + shape
    ranges = report.get("calibrated_range")
    if ranges and (ranges["inputs_outside"] or ranges["outputs_pinned"]):
        line += f" ({range_line(ranges)})"
    return line
