"""StatefulModel over the numpy backend: state, multi-stream, snapshots, npz round trip."""

import numpy as np
import pytest

import zoo
from edgelstm.core.errors import UserError
from edgelstm.runtime import BadInputError, StatefulModel, load, reference
from edgelstm.runtime.numpy_backend import NumpyBackend
from edgelstm.runtime.streams import StreamRouter
from edgelstm.core.spec import ModelSpec

ROUND_TRIP_CASES = ["lstm-last-bias-2x-softmax", "gru_v1-seq-nobias-1x-timedistributed",
                    "rnn-act_relu", "lstm-normalization", "gru-rescaling-dense3d"]


@pytest.mark.parametrize("case_id", ROUND_TRIP_CASES)
def test_npz_round_trip_is_exact(case_id, tmp_path):
    spec = zoo.spec(case_id)
    path = spec.save_npz(tmp_path / "m.npz")
    back = ModelSpec.load_npz(path)
    assert back.config() == spec.config()
    for a, b in zip(spec.layers, back.layers):
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            assert np.array_equal(a.weights[key], b.weights[key])
    _, stream = zoo.inputs(case_id)
    model = load(path)
    got = model.run(stream[0, :200])
    assert np.array_equal(got, zoo.reference_stream(case_id)[:200])


@pytest.mark.parametrize("case_id", ["lstm-seq-bias-2x-timedistributed", "gru-last-bias-1x-softmax", "rnn-act_tanh"])
def test_multi_stream_equals_each_stream_alone(case_id):
    spec = zoo.spec(case_id)
    rng = np.random.default_rng(7)
    xs = rng.uniform(-1, 1, (5, 300, spec.input_size)).astype(np.float32)
    together = StatefulModel(NumpyBackend(spec), streams=5).run(xs)
    for s in range(5):
        alone = StatefulModel(NumpyBackend(spec)).run(xs[s])
        assert np.array_equal(together[s], alone)


def test_interleaved_streams_with_router_equal_separate_runs():
    spec = zoo.spec("lstm-last-bias-1x-softmax")
    rng = np.random.default_rng(3)
    xs = rng.uniform(-1, 1, (3, 50, spec.input_size)).astype(np.float32)
    router = StreamRouter(StatefulModel(NumpyBackend(spec)))
    got = {s: [] for s in range(3)}
    order = rng.permutation(np.repeat(np.arange(3), 50))
    pos = [0, 0, 0]
    for s in order:
        got[s].append(router.step(str(s), xs[s, pos[s]]))
        pos[s] += 1
    for s in range(3):
        want, _ = reference.run_sequence(spec, xs[s : s + 1])
        assert np.array_equal(np.stack(got[s]), want[0])


def test_state_snapshot_resumes_exactly():
    spec = zoo.spec("gru-last-bias-2x-softmax")
    xs = np.random.default_rng(1).uniform(-1, 1, (100, spec.input_size)).astype(np.float32)
    full = StatefulModel(NumpyBackend(spec)).run(xs)
    first = StatefulModel(NumpyBackend(spec))
    first.run(xs[:60])
    snapshot = first.get_state()
    second = StatefulModel(NumpyBackend(spec))
    second.set_state(snapshot)
    assert np.array_equal(second.run(xs[60:]), full[60:])


def test_reset_returns_to_fresh_state():
    spec = zoo.spec("lstm-last-bias-1x-none")
    model = StatefulModel(NumpyBackend(spec))
    x = np.ones(spec.input_size, np.float32)
    first = model.step(x)
    model.step(x)
    model.reset()
    assert np.array_equal(model.step(x), first)


@pytest.mark.parametrize("bad", [[1.0, 2.0], [np.nan, 0, 0], [np.inf, 0, 0], ["a", 0, 0]])
def test_bad_input_is_refused_before_touching_state(bad):
    spec = zoo.spec("lstm-last-bias-1x-none")
    model = StatefulModel(NumpyBackend(spec))
    model.step(np.full(spec.input_size, 0.5, np.float32))
    before = model.get_state()
    with pytest.raises(BadInputError):
        model.step(np.array(bad, dtype=object))
    after = model.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_set_state_rejects_wrong_shapes():
    model = StatefulModel(NumpyBackend(zoo.spec("lstm-last-bias-1x-none")))
    with pytest.raises(UserError, match="shape"):
        model.set_state({"l0_h": np.zeros((1, 2)), "l0_c": np.zeros((1, 5))})
