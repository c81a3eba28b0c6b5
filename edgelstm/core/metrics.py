"""The decisions every layer makes the same way: is a figure usable, which class won.

Finiteness: the test every threshold and every input check uses (NaN and +-inf fail).

A value that is NaN compares False with everything, so ``not x > limit`` passes it; every
check that a figure or an array is usable goes through here instead.
"""

from __future__ import annotations

import math

import numpy as np

#: Up to this many float32 values, summing a Python list is the cheapest finiteness test
#: (~0.2 us for a row of 6, against ~1.3 us for np.isfinite(x).all()); above it numpy's wins.
LIST_CHECK_MAX = 256


def all_finite(arr) -> bool:
    """True when no value of ``arr`` is NaN or +-inf.

    For float32 the float64 sum of the values cannot overflow (it would take ~1e270 of
    them), so it is NaN or inf exactly when some value is; wider types take numpy's test.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.float32 and arr.size <= LIST_CHECK_MAX:
        return math.isfinite(sum(arr.ravel().tolist()))
    return bool(np.isfinite(arr).all())


def finite_number(value) -> bool:
    """True for an int or float that is neither NaN nor +-inf (a figure in a report; a
    bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def predicted_class(y: np.ndarray) -> np.ndarray:
    """Class indices from classifier outputs (..., classes): argmax, or for a single
    sigmoid output, whether it exceeds 0.5."""
    y = np.asarray(y)
    return (y[..., 0] > 0.5).astype(np.int64) if y.shape[-1] == 1 else y.argmax(-1)


def class_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``labels`` that ``predicted_class(outputs)`` gets right."""
    return float(np.mean(predicted_class(outputs) == np.asarray(labels)))
