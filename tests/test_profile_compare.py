"""`edgelstm profile --compare`: profile JSON files from several boards side by side."""

import json

import pytest
from click.testing import CliRunner

import exports
from edgelstm.cli import cli

CASE = "lstm-last-bias-2x-softmax"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    """Two real profiles (numpy, and LiteRT where installed), one with a board's machine."""
    root = tmp_path_factory.mktemp("profiles")
    paths = []
    for backend in ("numpy", "litert" if "litert" in exports.BACKENDS else "numpy"):
        out = root / f"{backend}-{len(paths)}.json"
        got = invoke("profile", exports.artifact(CASE, backend), "--backend", backend, "--steps", 100,
                     "--warmup", 10, "--json", out)
        assert got.exit_code == 0, got.output
        paths.append(out)
    # As if the second came from a Pi: the table shows each file's own machine.
    board = json.loads(paths[1].read_text())
    board["machine"].update(machine="aarch64", cpu="Raspberry Pi 4 Model B Rev 1.4", cores=4)
    paths[1].write_text(json.dumps(board))
    return paths


def test_table_shows_each_file_and_the_ratio(profiles, tmp_path):
    a, b = (json.loads(p.read_text()) for p in profiles)
    got = invoke("profile", "--compare", *profiles, "--json", tmp_path / "cmp.json")
    assert got.exit_code == 0, got.output
    lines = got.stdout.splitlines()
    assert profiles[0].name in lines[0] and profiles[1].name in lines[0]
    row = {line.split("  ")[0].strip(): line.split() for line in lines[2:]}
    assert row["machine"][-2:] == [a["machine"]["machine"], "aarch64"]
    assert row["p50 us"][-2:] == [f"{a['latency']['p50_us']:,.1f}", f"{b['latency']['p50_us']:,.1f}"]
    assert row["backend"][-2:] == [a["backend"], b["backend"]]
    want_ratio = b["latency"]["p50_us"] / a["latency"]["p50_us"]
    ratio_line = next(line for line in lines if line.startswith("p50 vs first"))
    assert ratio_line.split()[-2:] == ["1.00x", f"{want_ratio:.2f}x"]
    assert "Raspberry Pi 4 Model B Rev 1.4" in got.stdout
    data = json.loads((tmp_path / "cmp.json").read_text())["profiles"]
    assert [d["file"] for d in data] == [str(p) for p in profiles]
    assert data[1]["p50 vs first"] == pytest.approx(want_ratio)
    assert data[1]["p99 us"] == b["latency"]["p99_us"] and data[1]["cores"] == 4


@pytest.mark.parametrize("bad", ["one-file", "not-json", "not-a-profile", "missing"])
def test_bad_input_is_one_line(profiles, tmp_path, bad):
    other = tmp_path / "other.json"
    if bad == "not-json":
        other.write_text("{")
    elif bad == "not-a-profile":
        other.write_text(json.dumps({"latency": {"p50_us": float("nan")}}))
    args = [profiles[0]] if bad == "one-file" else [profiles[0], other]
    got = invoke("profile", "--compare", *args)
    assert got.exit_code == 2, got.output
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_profile_still_takes_one_artifact(profiles):
    got = invoke("profile", exports.artifact(CASE, "numpy"), exports.artifact(CASE, "numpy"))
    assert got.exit_code == 2 and "give one ARTIFACT" in got.output
