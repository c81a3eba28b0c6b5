"""Bundled datasets: shapes, labels and padding checked against the raw files."""

import gzip
from importlib import resources

import numpy as np
import pytest

from edgelstm import datasets


def raw_cases(name: str) -> tuple[list[np.ndarray], list[str]]:
    """A .ts file parsed here independently: one (steps, dims) array per case, and labels."""
    text = gzip.open(resources.files("edgelstm.datasets.data").joinpath(name).open("rb"), "rt").read()
    rows = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] not in "#@"]
    cases = [np.array([d.split(",") for d in r.split(":")[:-1]], np.float32).T for r in rows]
    return cases, [r.split(":")[-1] for r in rows]


@pytest.mark.parametrize("name, stem, length, dims, classes",
                         [("pickupgesture", "PickupGestureWiimoteZ", 361, 1, 10), ("acsf1", "ACSF1", 365, 1, 10),
                          ("japanesevowels", "JapaneseVowels", 29, 12, 9)])
def test_classification_sets_keep_every_value_and_label(name, stem, length, dims, classes):
    data = datasets.load(name)
    assert data.task == "classification" and len(data.class_names) == classes
    for part, x, y in (("TRAIN", data.x_train, data.y_train), ("TEST", data.x_test, data.y_test)):
        cases, labels = raw_cases(f"{stem}_{part}.ts.gz")
        assert x.shape == (len(cases), length, dims)
        assert [data.class_names[k] for k in y] == labels
        for got, raw in zip(x, cases):
            # The recording sits at the end; before it, the first value repeated (at rest).
            np.testing.assert_array_equal(got[length - len(raw):], raw)
            assert (got[:length - len(raw)] == raw[0]).all()


@pytest.mark.parametrize("stem, shortest, longest", [("PickupGestureWiimoteZ", 29, 361), ("JapaneseVowels", 7, 29)])
def test_variable_length_sets_are_variable(stem, shortest, longest):
    lengths = {len(c) for part in ("TRAIN", "TEST") for c in raw_cases(f"{stem}_{part}.ts.gz")[0]}
    assert min(lengths) == shortest and max(lengths) == longest


def test_bleeding_forecasts_ten_steps_ahead():
    data = datasets.load("bleeding")
    series = datasets.bleeding_series()
    assert len(series) == 7501 and data.task == "regression"
    assert data.x_train.shape[1:] == (64, 1) and data.x_test.shape[1:] == (64, 1)
    # Window k of the training part starts at 8 k; its target is 10 steps past its end.
    for k in (0, 5, len(data.x_train) - 1):
        np.testing.assert_array_equal(data.x_train[k, :, 0], series[8 * k:8 * k + 64])
        assert data.y_train[k, 0] == series[8 * k + 64 + 9]
    np.testing.assert_array_equal(data.x_test[0, :, 0], series[4000:4064])
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
