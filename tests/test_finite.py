"""edgelstm/core/metrics.py: the one finiteness test of arrays and report figures."""

import math

import numpy as np
import pytest

from edgelstm.core.metrics import LIST_CHECK_MAX, all_finite, finite_number


@pytest.mark.parametrize("size", [1, 6, LIST_CHECK_MAX, LIST_CHECK_MAX + 1, 5000])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_value_anywhere_fails(size, bad):
    for where in (0, size // 2, size - 1):
        x = np.ones(size, np.float32)
        x[where] = bad
        assert not all_finite(x) and not all_finite(x.reshape(1, -1))
    assert all_finite(np.ones(size, np.float32))


def test_large_finite_values_are_finite_in_every_dtype():
    # float64 values whose sum overflows: the list-sum shortcut must not be used for them
    assert all_finite(np.array([1e308, 1e308]))
    assert all_finite(np.full(LIST_CHECK_MAX, np.finfo(np.float32).max, np.float32))
    assert all_finite(np.arange(10)) and all_finite([]) and all_finite(np.zeros((0, 3), np.float32))


@pytest.mark.parametrize("value, finite", [
    (0, True), (1.5, True), (-1e300, True), (math.nan, False), (math.inf, False), (-math.inf, False),
    (None, False), ("1.0", False), (True, False),  # a bool is not a figure
])
def test_finite_number(value, finite):
    assert finite_number(value) is finite
