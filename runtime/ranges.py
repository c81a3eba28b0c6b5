"""Counting the rows a quantized model cannot represent.

An int8 / int16x8 model only represents the input and output values its calibration
data covered: an input beyond that range is clipped before the first layer, and an
output at the end of its range is pinned there whatever the true answer is (the seed's
toy model answers 1.9 where Keras says 9.3). Nothing in the numbers says so, so the
runtime counts such rows and tells the caller once.

The ranges come from the artifact's description (``calibration.input_range`` /
``output_range``, written by the exporter); a model without them (float32, dynamic)
gets no monitor and pays nothing.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from edgelstm.core.artifact import INPUT_NAME, OUTPUT_NAME

#: Classifier probabilities sit at 0 and 1 by nature; only regression outputs are
#: counted as pinned.
PINNED_TASKS = ("regression",)


class CalibrationRangeWarning(UserWarning):
    """Inputs outside a quantized model's calibrated range, or outputs pinned at its ends."""


class RangeMonitor:
    """Counts rows outside the calibrated input range and outputs pinned at the ends of
    the calibrated output range; calls ``on_range(summary)`` once, at the first such row
    (default: a ``CalibrationRangeWarning`` through the ``warnings`` module)."""

    def __init__(self, input_range, output_range, output_step: float = 0.0, count_outputs: bool = True,
                 on_range: Callable[[dict], None] | None = None):
        self.in_lo, self.in_hi = (float(v) for v in input_range)
        self.out_lo, self.out_hi = (float(v) for v in output_range) if output_range else (None, None)
        # A dequantized output can only land on its grid: within one step of an end is at it.
        self.tol = float(output_step)
        self.count_outputs = count_outputs and self.out_lo is not None
        if self.count_outputs:
            self.pin_lo, self.pin_hi = self.out_lo + self.tol, self.out_hi - self.tol
        self.on_range = on_range
        self.rows = self.inputs_outside = self.outputs_pinned = 0
        self.told = False

    @classmethod
    def from_description(cls, desc: dict, on_range=None) -> "RangeMonitor | None":
        cal = desc.get("calibration") if isinstance(desc, dict) else None
        if not isinstance(cal, dict) or not cal.get("input_range"):
            return None
        step = 0.0
        for out in ((desc.get("tflite") or {}).get("outputs") or []):
            if out.get("name") == (desc.get("output") or {}).get("name", OUTPUT_NAME) and out.get("scale"):
                step = float(out["scale"])
        return cls(cal["input_range"], cal.get("output_range"), step,
                   count_outputs=desc.get("task", "regression") in PINNED_TASKS, on_range=on_range)

    def observe(self, x: np.ndarray, y: np.ndarray) -> None:
        """One step of every stream: ``x`` (streams, features), ``y`` (streams, outputs)."""
        if len(x) == 1:  # one stream: Python min/max on a short list is ~10x cheaper than numpy here
            self.rows += 1
            xs = x.tolist()[0]
            outside = min(xs) < self.in_lo or max(xs) > self.in_hi
            pinned = False
            if self.count_outputs:
                ys = y.tolist()[0]
                pinned = min(ys) <= self.pin_lo or max(ys) >= self.pin_hi
            if not (outside or pinned):
                return
            outside, pinned = int(outside), int(pinned)
        else:
            self.rows += len(x)
            outside = int(((x < self.in_lo) | (x > self.in_hi)).any(axis=1).sum())
            pinned = 0
            if self.count_outputs:
                pinned = int(((y <= self.pin_lo) | (y >= self.pin_hi)).any(axis=1).sum())
        if outside or pinned:
            self.inputs_outside += outside
            self.outputs_pinned += pinned
            if not self.told:
                self.told = True
                summary = self.summary()
                if self.on_range is not None:
                    self.on_range(summary)
                else:
                    warnings.warn(range_line(summary, so_far=True), CalibrationRangeWarning, stacklevel=4)

    def summary(self) -> dict:
        return {"rows": self.rows, "inputs_outside": self.inputs_outside, "outputs_pinned": self.outputs_pinned,
                "input_range": [self.in_lo, self.in_hi],
                "output_range": [self.out_lo, self.out_hi] if self.out_lo is not None else None}


def _share(n: int, rows: int) -> str:
    if not rows:
        return "0 rows"
    pct = 100 * n / rows
    # two significant digits below 10 %, so that a few rows in thousands do not read "0%"
    return f"{n} of {rows} rows ({pct:.2g}%)" if pct < 10 else f"{n} of {rows} rows ({pct:.0f}%)"


def range_line(summary: dict, so_far: bool = False) -> str:
    """One line on what a quantized model could not represent (or that all was in range)."""
    rows = summary["rows"]
    parts = []
    if summary["inputs_outside"]:
        lo, hi = summary["input_range"]
        parts.append(f"{_share(summary['inputs_outside'], rows)} had inputs outside the calibrated "
                     f"input range [{lo:.4g}, {hi:.4g}]")
    if summary["outputs_pinned"]:
        lo, hi = summary["output_range"]
        parts.append(f"{_share(summary['outputs_pinned'], rows)} gave outputs pinned at the ends of the "
                     f"calibrated output range [{lo:.4g}, {hi:.4g}]")
    if not parts:
        return f"calibrated range: all {rows} rows inside"
    return ("calibrated range: " + "; ".join(parts) + (" so far" if so_far else "")
            + ": quantized results there are clipped (re-export with --calibration-data that covers them)")


def ranges_from_samples(spec, samples: list[dict], mode: str = "step") -> dict:
    """The input and output ranges the calibrator saw in ``samples`` (what
    ``representative_samples`` feeds it), for the artifact's description:
    ``{"input_range": [lo, hi], "output_range": [lo, hi]}`` over every feature / output
    (int8 I/O is quantized per tensor, so one range each)."""
    from edgelstm.runtime import reference

    x = np.concatenate([s[INPUT_NAME] for s in samples]).astype(np.float32)
    if mode == "step":
        state = {name: np.concatenate([s[name] for s in samples]) for name in samples[0] if name != INPUT_NAME}
        y, _ = reference.step(spec, x, state)
    else:
        y = reference.run_sequence(spec, x)[0]
    return {"input_range": [float(x.min()), float(x.max())], "output_range": [float(y.min()), float(y.max())]}
