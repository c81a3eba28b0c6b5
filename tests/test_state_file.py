"""State that survives: runtime/state_file.py and `edgelstm run --state-file`."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import exports
import zoo
from edgelstm.cli import cli
from edgelstm.core.errors import UserError
from edgelstm.runtime import load, state_file
from edgelstm.runtime.streams import StreamRouter

CASE = "lstm-last-bias-2x-softmax"  # two stacked LSTMs: four state vectors
GRU_CASE = "gru-seq-bias-1x-timedistributed"
EDGELSTM = [sys.executable, "-c", "from edgelstm.cli import main; main()"]
#: A resumed stream is the same computation on the same engine: bitwise equal outputs.
SPLIT_TOL = 0.0
#: The engines against the numpy reference, to show the split run computes the model at all
#: (float32 graphs, 80-step streams; see test_tflite.py / test_onnx.py for the exporters' own).
ENGINE_TOL = 1e-5


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def stream_rows(case_id, n, streams=("a", "b", "c"), seed=3):
    """n rows of interleaved streams, as (stream id, x) in file order."""
    rng = np.random.default_rng(seed)
    f = zoo.BY_ID[case_id].features
    return [(streams[int(rng.integers(len(streams)))], rng.uniform(-1, 1, f).astype(np.float32)) for _ in range(n)]


def csv_text(rows, header=True):
    lines = ["sensor," + ",".join(f"f{k}" for k in range(len(rows[0][1])))] if header else []
    lines += [f"{sid}," + ",".join(repr(float(v)) for v in x) for sid, x in rows]
    return "\n".join(lines) + "\n"


def outputs(text):
    return text.strip().splitlines()[1:]


def reference_outputs(case_id, rows):
    """The numpy reference per stream, in file order: (n, outputs)."""
    from edgelstm.runtime import reference

    spec = zoo.spec(case_id)
    states, ys = {}, []
    for sid, x in rows:
        y, states[sid] = reference.step(spec, x[None], states.get(sid) or reference.zero_state(spec))
        ys.append(y[0])
    return np.array(ys)


# -- the file itself ------------------------------------------------------------------

def _model(backend="numpy"):
    return load(exports.artifact(CASE, backend))


def _states(model, ids, seed=0):
    rng = np.random.default_rng(seed)
    return {sid: {n: rng.standard_normal((1, s)).astype(np.float32) for n, s in model.state_sizes} for sid in ids}


def test_roundtrip_keeps_ids_values_and_rows(tmp_path):
    model = _model()
    streams = _states(model, ["", "sensor-1", "ünïcode id", "42"])
    path = tmp_path / "s.npz"
    state_file.save(path, streams, model.state_sizes, model.description, rows=1234)
    got = state_file.load(path, model.state_sizes, model.description)
    assert got.rows == 1234
    assert list(got.streams) == list(streams)
    for sid in streams:
        for name, _ in model.state_sizes:
            assert got.streams[sid][name].dtype == np.float32
            np.testing.assert_array_equal(got.streams[sid][name], streams[sid][name])
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temp file left behind
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.stat().st_mode == plain.stat().st_mode  # not mkstemp's private 0600


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    model = _model()
    path = tmp_path / "s.npz"
    good = _states(model, ["a"], seed=1)
    state_file.save(path, good, model.state_sizes, model.description, rows=7)
    before = path.read_bytes()

    def half_then_fail(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_file.np, "savez", half_then_fail)
    with pytest.raises(OSError):
        state_file.save(path, _states(model, ["a"], seed=2), model.state_sizes, model.description, rows=9)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]
    assert state_file.load(path, model.state_sizes, model.description).rows == 7


def test_save_refuses_a_diverged_state_and_keeps_the_last_good_file(tmp_path):
    model = _model()
    path = tmp_path / "s.npz"
    state_file.save(path, _states(model, ["a", "b"]), model.state_sizes, model.description, rows=5)
    before = path.read_bytes()
    diverged = _states(model, ["a", "b"], seed=3)
    diverged["b"][model.state_sizes[0][0]][0, 1] = np.inf
    with pytest.raises(UserError, match="stream 'b' holds NaN or inf|of stream 'b'"):
        state_file.save(path, diverged, model.state_sizes, model.description, rows=6)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage, needle", [
    ("truncate", "not a valid edgelstm state file"),
    ("garbage", "not a valid edgelstm state file"),
    ("other_model", "belongs to another model"),
    ("other_shapes", "holds states"),
    ("nan", "NaN or inf"),
])
def test_load_refuses_what_is_not_this_models_state(tmp_path, damage, needle):
    model = _model()
    path = tmp_path / "s.npz"
    streams = _states(model, ["a", "b"])
    if damage == "other_model":
        state_file.save(path, streams, model.state_sizes, {"spec_hash": "0" * 64})
    elif damage == "other_shapes":
        other = load(exports.artifact(GRU_CASE, "numpy"))
        state_file.save(path, _states(other, ["a"]), other.state_sizes, {})
    elif damage == "nan":  # written by something else: save() itself refuses NaN (below)
        state_file.save(path, streams, model.state_sizes, model.description)
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
        arrays[f"state/{model.state_sizes[0][0]}"][1, 0] = np.nan
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        state_file.save(path, streams, model.state_sizes, model.description)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    with pytest.raises(UserError, match=needle):
        state_file.load(path, model.state_sizes, model.description)
    # Through the CLI: one line, exit 2, and the file is not overwritten.
    before = path.read_bytes()
    result = invoke("run", exports.artifact(CASE, "numpy"), "--state-file", path, input="0,0,0\n")
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert path.read_bytes() == before


# -- split streams, every backend --------------------------------------------------------

@pytest.mark.parametrize("backend", exports.BACKENDS)
@pytest.mark.parametrize("case_id", [CASE, GRU_CASE])
def test_split_stream_equals_one_run(tmp_path, backend, case_id):
    path = exports.artifact(case_id, backend)
    rows = stream_rows(case_id, 80)
    whole = invoke("run", path, "--stream-column", "sensor", "--backend", backend, input=csv_text(rows))
    assert whole.exit_code == 0, whole.output + whole.stderr
    want = outputs(whole.stdout)
    ref = reference_outputs(case_id, rows)
    got = np.array([line.split(",")[1:] for line in want], float)[:, :ref.shape[1]]
    assert np.abs(got - ref).max() <= ENGINE_TOL

    state = tmp_path / "state.npz"
    parts = []
    for chunk, every in ((rows[:23], 5), (rows[23:51], 1000), (rows[51:], 7)):
        result = invoke("run", path, "--stream-column", "sensor", "--backend", backend,
                        "--state-file", state, "--checkpoint-every", every, input=csv_text(chunk))
        assert result.exit_code == 0, result.output + result.stderr
        parts += outputs(result.stdout)
    assert parts == want  # identical text: bitwise-equal outputs (SPLIT_TOL = 0)
    assert state_file.load(state, load(path, backend=backend).state_sizes, {}).rows == 80


def test_python_api_snapshot_resumes_exactly(tmp_path):
    """StreamRouter states through the state file, without the CLI."""
    model = load(exports.artifact(CASE, "numpy"))
    rows = stream_rows(CASE, 40)
    router = StreamRouter(model)
    want = [router.step(sid, x) for sid, x in rows]

    first = StreamRouter(model)
    got = [first.step(sid, x) for sid, x in rows[:17]]
    state_file.save(tmp_path / "s.npz", first.states, model.state_sizes, model.description, rows=17)
    second = StreamRouter(model)
    second.states = state_file.load(tmp_path / "s.npz", model.state_sizes, model.description).streams
    got += [second.step(sid, x) for sid, x in rows[17:]]
    np.testing.assert_array_equal(np.array(got), np.array(want))


# -- crashes ---------------------------------------------------------------------------------

def _state_after(path, rows, backend="numpy"):
    model = load(path, backend=backend)
    router = StreamRouter(model)
    for sid, x in rows:
        router.step(sid, x)
    return router.states


def _assert_states_equal(got, want):
    assert sorted(got) == sorted(want)
    for sid in want:
        for name in want[sid]:
            np.testing.assert_array_equal(got[sid][name], want[sid][name])


@pytest.mark.parametrize("sig, code, done", [
    (signal.SIGKILL, -signal.SIGKILL, 20),  # killed outright: the checkpoint after row 20
    (signal.SIGTERM, 128 + signal.SIGTERM, 25),  # systemctl stop, a reboot: every row streamed
], ids=["SIGKILL", "SIGTERM"])
def test_signal_between_checkpoints(tmp_path, sig, code, done):
    """A signal after 25 rows, with checkpoints every 10, while the run waits for row 26:
    the file holds the state after row ``done``, and resuming from there gives the
    uninterrupted run's outputs."""
    path = exports.artifact(CASE, "numpy")
    rows = stream_rows(CASE, 60)
    text = csv_text(rows).splitlines(keepends=True)
    state = tmp_path / "state.npz"
    proc = subprocess.Popen(EDGELSTM + ["run", str(path), "--stream-column", "sensor", "--state-file", str(state),
                                        "--checkpoint-every", "10"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write(text[0])  # header
        for line in text[1:26]:
            proc.stdin.write(line)
            proc.stdin.flush()
            proc.stdout.readline()
        proc.stdout.readline()  # the header came first: this is row 25's output, so row 25 is done
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == code
    _assert_saved_then_resumes(path, state, rows, done=done)


def _assert_saved_then_resumes(path, state, rows, done):
    """The state file holds exactly the state after ``done`` rows, and a run resumed from
    it gives the outputs an uninterrupted run gives from there."""
    model = load(path)
    saved = state_file.load(state, model.state_sizes, model.description)
    assert saved.rows == done
    _assert_states_equal(saved.streams, _state_after(path, rows[:done]))
    resumed = invoke("run", path, "--stream-column", "sensor", "--state-file", state, input=csv_text(rows[done:]))
    whole = invoke("run", path, "--stream-column", "sensor", input=csv_text(rows))
    assert outputs(resumed.stdout) == outputs(whole.stdout)[done:]


CRASH_IN_WRITE = """
import os, sys
import numpy as np
from edgelstm.runtime import state_file
real_savez = np.savez
def dying_savez(fh, **arrays):
    if os.environ["CRASH_AT"] == "mid-write":
        fh.write(b"PK\\x03\\x04" + b"\\0" * 100)  # a torn archive in the temp file
        fh.flush()
        os._exit(137)
    real_savez(fh, **arrays)
def dying_replace(src, dst):
    os._exit(137)  # written and synced, but never renamed
state_file.np.savez = dying_savez
if os.environ["CRASH_AT"] == "before-rename":
    state_file.os.replace = dying_replace
from edgelstm.cli import main
main()
"""


@pytest.mark.parametrize("crash_at", ["mid-write", "before-rename"])
def test_crash_while_writing_leaves_last_good_state(tmp_path, crash_at):
    path = exports.artifact(CASE, "numpy")
    rows = stream_rows(CASE, 30)
    state = tmp_path / "state.npz"
    first = invoke("run", path, "--stream-column", "sensor", "--state-file", state, input=csv_text(rows[:10]))
    assert first.exit_code == 0
    good = state.read_bytes()
    proc = subprocess.run([sys.executable, "-c", CRASH_IN_WRITE, "run", str(path), "--stream-column", "sensor",
                           "--state-file", str(state), "--checkpoint-every", "5"],
                          input=csv_text(rows[10:]), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CRASH_AT": crash_at})
    assert proc.returncode == 137, proc.stderr
    assert state.read_bytes() == good
    # The leftover temp file (if any) does not stop the next run.
    _assert_saved_then_resumes(path, state, rows, done=10)


def test_bad_row_saves_state_of_last_good_row(tmp_path):
    path = exports.artifact(CASE, "numpy")
    rows = stream_rows(CASE, 12)
    lines = csv_text(rows).splitlines()
    lines.insert(9, "b,0.1,nan,0.3")  # file line 10, after the header and 8 good rows
    state = tmp_path / "state.npz"
    result = invoke("run", path, "--stream-column", "sensor", "--state-file", state, input="\n".join(lines) + "\n")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: input line 10: 'nan' is not a finite number"]
    model = load(path)
    saved = state_file.load(state, model.state_sizes, model.description)
    assert saved.rows == 8
    _assert_states_equal(saved.streams, _state_after(path, rows[:8]))


def test_checkpoint_every_needs_state_file():
    result = invoke("run", exports.artifact(CASE, "numpy"), "--checkpoint-every", "3", input="0,0,0\n")
    assert result.exit_code == 2 and "--state-file" in result.stderr
