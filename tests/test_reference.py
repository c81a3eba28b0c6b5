"""The numpy reference against Keras itself, for every supported layer combination."""

import numpy as np
import pytest

import zoo
from edgelstm.runtime import reference

# Keras (TF, float32, oneDNN kernels) and the numpy reference (float32) sum in different
# orders; with contractive weights the difference stays at float32 rounding level.
KERAS_TOL = 1e-5


@pytest.mark.parametrize("case_id", zoo.CASE_IDS)
def test_windows_match_keras(case_id):
    model, spec = zoo.keras_model(case_id), zoo.spec(case_id)
    windows, _ = zoo.inputs(case_id)
    want = np.asarray(model(windows))
    got = reference.keras_output(spec, windows)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= KERAS_TOL


@pytest.mark.parametrize("case_id", zoo.CASE_IDS)
def test_1000_step_stream_matches_keras(case_id):
    """Streaming outputs: step t equals Keras' output for the prefix of length t+1."""
    want = zoo.keras_stream(case_id)
    got = zoo.reference_stream(case_id)
    assert got.shape == want.shape == (zoo.STREAM_STEPS, zoo.spec(case_id).output_size)
    assert np.abs(got - want).max() <= KERAS_TOL


def test_streaming_twin_is_keras_prefix_semantics():
    """The twin's step t is the original model's output on the first t+1 steps."""
    case_id = "lstm-last-bias-2x-softmax"
    model = zoo.keras_model(case_id)
    _, stream = zoo.inputs(case_id)
    stream_out = zoo.keras_stream(case_id)
    for t in (0, 9, 99):
        prefix = np.asarray(model(stream[:, : t + 1]))[0]
        np.testing.assert_allclose(stream_out[t], prefix, atol=KERAS_TOL)


def test_zoo_covers_every_supported_axis():
    cases = zoo.CASES
    assert {c.cell for c in cases} == set(zoo.CELLS)
    for cell in zoo.CELLS:
        mine = [c for c in cases if c.cell == cell]
        assert {c.return_sequences for c in mine} == {True, False}
        assert {c.use_bias for c in mine} == {True, False}
        assert {len(c.units) for c in mine} == {1, 2}
        assert {c.activation for c in mine} == set(zoo.ACTIVATIONS)
        if cell != "rnn":
            assert {c.recurrent_activation for c in mine} == set(zoo.ACTIVATIONS)
    assert {c.head for c in cases} == {"none", "dense", "softmax", "timedistributed", "denormalize"}
    assert {c.pre for c in cases} == {"none", "normalization", "adapted", "rescaling", "dropout"}


def test_hard_sigmoid_is_keras3_formula():
    x = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0], np.float32)
    np.testing.assert_allclose(reference.ACTIVATIONS["hard_sigmoid"](x), [0, 0, 0.25, 0.5, 0.75, 1, 1])
