"""The emulated-board check's verdicts, without a board: the host's own `edgelstm run /
info / profile` output stands in for the board's, then is damaged. (The boards
themselves run in `.ci/run`, before pytest: tests/device/board_check.py.)"""

import json
import subprocess
import sys

import numpy as np
import pytest

import board_check
import exports
import zoo

ROWS = 12


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """A board's results as on_board.py writes them, made by running the host's CLI."""
    tmp = tmp_path_factory.mktemp("board")
    path = exports.artifact(board_check.CASE, "numpy")
    _, stream = zoo.inputs(board_check.CASE)
    data = tmp / "in.csv"
    np.savetxt(data, stream[0, :ROWS], delimiter=",", fmt="%.8f")
    cli = [sys.executable, "-m", "edgelstm.cli"]

    def sh(*args):
        done = subprocess.run(cli + [str(a) for a in args], capture_output=True, text=True, timeout=300)
        return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    prof = tmp / "p.json"
    runs = {"run": sh("run", path, "--input", data), "info": sh("info", "--json", path),
            "profile": sh("profile", path, "--steps", board_check.PROFILE_STEPS, "--json", prof)}
    runs["profile_json"] = json.loads(prof.read_text())
    item = board_check.Planned("numpy-float32", path, "numpy", zoo.reference_stream(board_check.CASE)[:ROWS],
                               board_check.FLOAT_TOL, "FLOAT_TOL")
    machine = runs["profile_json"]["machine"]["machine"]
    board = board_check.Board("test", machine, "the host as a board", ())
    return board, item, {"machine": machine, "runs": {item.name: runs}}


def damaged(results, **changes):
    copy = json.loads(json.dumps(results))
    copy["runs"]["numpy-float32"]["run"].update(changes)
    return copy


def test_the_host_passes_as_a_board(honest):
    board, item, results = honest
    assert board_check.judge(board, [item], results) == []


@pytest.mark.parametrize("how", ["off by 1e-4", "nan", "a row missing", "exit 2"])
def test_a_wrong_answer_fails(honest, how):
    board, item, results = honest
    lines = results["runs"][item.name]["run"]["stdout"].splitlines()
    header, rows = lines[0], lines[1:]
    if how == "off by 1e-4":  # ten times FLOAT_TOL, in one value of one row
        cells = rows[5].split(",")
        cells[1] = repr(float(cells[1]) + 1e-4)
        rows[5] = ",".join(cells)
    elif how == "nan":
        rows[3] = ",".join(["nan"] + rows[3].split(",")[1:])
    elif how == "a row missing":
        rows = rows[:-1]
    bad = damaged(results, stdout="\n".join([header, *rows]) + "\n", code=2 if how == "exit 2" else 0)
    problems = board_check.judge(board, [item], bad)
    assert problems and item.name in problems[0]


def test_another_description_fails(honest):
    board, item, results = honest
    bad = json.loads(json.dumps(results))
    info = json.loads(bad["runs"][item.name]["info"]["stdout"])
    info["state_floats"] = info.get("state_floats", 0) + 1
    bad["runs"][item.name]["info"]["stdout"] = json.dumps(info)
    assert any("info" in p for p in board_check.judge(board, [item], bad))


def test_another_machine_fails(honest):
    board, item, results = honest
    other = board_check.Board("armhf", "armv7l", "a 32-bit board", ())
    assert any("armv7l" in p for p in board_check.judge(other, [item], results))
