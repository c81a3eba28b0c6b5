"""Bad input never poisons a stream: refused before it touches the state, on every backend."""

import numpy as np
import pytest
from click.testing import CliRunner

import exports
import zoo
from edgelstm.cli import cli
from edgelstm.runtime import BadInputError, load, state_file
from edgelstm.runtime.streams import StreamRouter

CASE = "lstm-last-bias-2x-softmax"  # 3 features, two stacked LSTMs, softmax head
GOOD = np.random.default_rng(5).uniform(-1, 1, (6, 3)).astype(np.float32)

#: (id, CSV row, the words the error must contain)
BAD_ROWS = [
    ("short", "0.1,0.2", "2 values, the model takes 3"),
    ("long", "0.1,0.2,0.3,0.4", "4 values, the model takes 3"),
    ("text", "0.1,abc,0.3", "'abc' is not a number"),
    ("empty_cell", "0.1,,0.3", "'' is not a number"),
    ("nan", "nan,0.2,0.3", "'nan' is not a finite number"),
    ("inf", "0.1,inf,0.3", "'inf' is not a finite number"),
    ("minus_inf", "0.1,0.2,-inf", "'-inf' is not a finite number"),
    ("float32_overflow", "1e39,0.2,0.3", "'1e39' is beyond the float32 range"),
]
#: Python API inputs that must be refused, and why.
BAD_INPUTS = [
    ("short", np.zeros(2, np.float32)),
    ("long", np.zeros(4, np.float32)),
    ("text", ["0.1", "abc", "0.3"]),
    ("none", None),
    ("nan", np.array([np.nan, 0, 0], np.float32)),
    ("inf", np.array([0, np.inf, 0], np.float32)),
    ("minus_inf", [0.0, 0.0, -np.inf]),
    ("float64_overflow", np.array([1e39, 0, 0])),  # becomes inf as float32
    ("matrix", np.zeros((2, 3), np.float32)),
]


def csv(rows):
    return "\n".join(",".join(repr(float(v)) for v in row) if not isinstance(row, str) else row
                     for row in rows) + "\n"


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def output_lines(text):
    return text.strip().splitlines()[1:]


# -- Python API -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", exports.BACKENDS)
def test_step_refuses_bad_input_and_keeps_state(backend):
    model = load(exports.artifact(CASE, backend), backend=backend)
    clean = load(exports.artifact(CASE, backend), backend=backend)
    for x in GOOD[:3]:
        model.step(x)
        clean.step(x)
    before = model.get_state()
    for name, bad in BAD_INPUTS:
        with pytest.raises(BadInputError):
            model.step(bad)
        after = model.get_state()
        for key in before:
            np.testing.assert_array_equal(after[key], before[key], err_msg=f"{name} touched {key}")
    # The stream carries on exactly as one that never saw the bad inputs.
    np.testing.assert_array_equal(model.run(GOOD[3:]), clean.run(GOOD[3:]))


@pytest.mark.parametrize("backend", exports.BACKENDS)
def test_batch_with_one_bad_stream_is_refused_whole(backend):
    model = load(exports.artifact(CASE, backend), backend=backend, streams=3)
    model.step(GOOD[:3])
    before = model.get_state()
    batch = GOOD[3:6].copy()
    batch[1, 2] = np.nan
    with pytest.raises(BadInputError, match="NaN or inf"):
        model.step(batch)
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[key])


def test_large_batch_uses_the_vectorised_check():
    """Past the list-sum fast path (256 values) the check is numpy's; both must refuse."""
    model = load(exports.artifact(CASE, "numpy"), streams=100)
    batch = np.zeros((100, 3), np.float32)
    model.step(batch)
    batch[99, 0] = np.inf
    before = model.get_state()
    with pytest.raises(BadInputError):
        model.step(batch)
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[key])


def test_huge_finite_values_are_not_refused():
    """The finiteness check must not mistake large finite values for overflow."""
    model = load(exports.artifact(CASE, "numpy"))
    big = np.array([1e37, -1e37, 1e37], np.float32)  # x . x would overflow; x itself is fine
    y = model.step(big)
    assert y.shape == (3,) and np.isfinite(y).all()


def test_router_refuses_bad_rows_per_stream():
    model = load(exports.artifact(CASE, "numpy"))
    router = StreamRouter(model)
    router.step("a", GOOD[0])
    router.step("b", GOOD[1])
    before = {sid: {k: v.copy() for k, v in st.items()} for sid, st in router.states.items()}
    for _, bad in BAD_INPUTS:
        with pytest.raises(BadInputError):
            router.step("a", bad)
        with pytest.raises(BadInputError):
            router.step("new", bad)
    assert sorted(router.states) == ["a", "b"]  # a refused first row creates no stream
    for sid in before:
        for key in before[sid]:
            np.testing.assert_array_equal(router.states[sid][key], before[sid][key])


# -- the CLI ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", exports.BACKENDS)
@pytest.mark.parametrize("kind, row, why", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_run_error_mode_stops_with_line_number(tmp_path, backend, kind, row, why):
    path = exports.artifact(CASE, backend)
    state = tmp_path / "state.npz"
    text = csv([*GOOD[:2], row, *GOOD[2:]])
    result = invoke("run", path, "--backend", backend, "--state-file", state, input=text)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: input line 3: {why}"]
    assert len(output_lines(result.stdout)) == 2  # the rows before it were streamed
    # The saved state is that of the two good rows.
    model = load(path, backend=backend)
    model.run(GOOD[:2])
    saved = state_file.load(state, model.state_sizes, model.description)
    assert saved.rows == 2
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(saved.streams[""][key], value)


@pytest.mark.parametrize("backend", exports.BACKENDS)
def test_run_skip_mode_equals_run_without_the_bad_rows(tmp_path, backend):
    path = exports.artifact(CASE, backend)
    rows = [GOOD[0], BAD_ROWS[0][1], GOOD[1], GOOD[2]] + [b[1] for b in BAD_ROWS[1:]] + list(GOOD[3:])
    state = tmp_path / "state.npz"
    result = invoke("run", path, "--backend", backend, "--on-bad-row", "skip", "--state-file", state,
                    input=csv(rows))
    clean = invoke("run", path, "--backend", backend, input=csv(GOOD))
    assert result.exit_code == 0, result.stderr
    # a skipped row gets an output row with empty values, so output row k answers input row k
    clean_rows = iter(output_lines(clean.stdout))
    empty = "," * (len(output_lines(clean.stdout)[0].split(",")) - 1)
    assert output_lines(result.stdout) == [empty if isinstance(r, str) else next(clean_rows) for r in rows]
    skipped = [line for line in result.stderr.splitlines() if line.startswith("warning: input line")]
    bad_lines = [i + 1 for i, r in enumerate(rows) if isinstance(r, str)]
    assert [int(line.split()[3].rstrip(":")) for line in skipped] == bad_lines
    for (_, _, why), line in zip(BAD_ROWS, skipped):
        assert why in line
    assert result.stderr.splitlines()[-1] == f"{len(GOOD)} rows streamed, {len(BAD_ROWS)} skipped"
    model = load(path, backend=backend)
    model.run(GOOD)
    saved = state_file.load(state, model.state_sizes, model.description)
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(saved.streams[""][key], value)


def test_skip_mode_keeps_other_streams_going():
    """A bad row of one stream changes no stream: every stream's outputs equal its clean run."""
    path = exports.artifact(CASE, "numpy")
    f = zoo.BY_ID[CASE].features
    rng = np.random.default_rng(11)
    good = [(s, rng.uniform(-1, 1, f)) for s in "abab" * 3]
    # repr of a Python float (numpy 2's repr of np.float64 is "np.float64(...)", not a number)
    lines = ["id,f0,f1,f2"] + [f"{s}," + ",".join(repr(float(v)) for v in x) for s, x in good]
    dirty = lines[:4] + ["a,1,2", "b,nan,0,0", "c,x,y,z"] + lines[4:]
    got = invoke("run", path, "--stream-column", "id", "--on-bad-row", "skip", input="\n".join(dirty) + "\n")
    want = invoke("run", path, "--stream-column", "id", input="\n".join(lines) + "\n")
    assert got.exit_code == 0 and want.exit_code == 0, want.stderr
    assert len(output_lines(want.stdout)) == len(good)
    # the skipped rows' places hold empty values (the stream id echoed where there was one)
    assert [ln for ln in output_lines(got.stdout) if ln.split(",", 1)[1].strip(",")] == output_lines(want.stdout)
    assert output_lines(got.stdout)[3:6] == ["a" + "," * (len(output_lines(want.stdout)[0].split(",")) - 1),
                                             "b" + "," * (len(output_lines(want.stdout)[0].split(",")) - 1),
                                             "c" + "," * (len(output_lines(want.stdout)[0].split(",")) - 1)]
