"""The Raspberry Pi deployment guide's systemd unit (docs/edgelstm.service) on the host.

The same unit runs inside the emulated arm64 board in tests/device/board_check.py
(stopped with SIGTERM and restarted from its state file); here: systemd parses it, and
its ExecStart line, pointed at this checkout, streams and saves as the guide says.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exports
import zoo

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "docs" / "edgelstm.service"
CASE = "lstm-last-bias-2x-softmax"
ROWS = 30
#: float32 LiteRT vs the numpy reference over a short stream (see test_tflite.py).
FLOAT_TOL = 1e-5
BOARD_EDGELSTM = "/opt/edgelstm/bin/edgelstm"


def service_settings() -> dict:
    settings, section = {}, ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and line[0] not in "#;" and "=" in line:
            key, _, value = line.partition("=")
            settings[(section, key)] = value
    return settings


def host_edgelstm() -> str:
    return str(Path(sys.executable).with_name("edgelstm"))


def test_unit_file_verifies(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (CI installs the systemd package)")
        pytest.skip("systemd-analyze is not installed")
    # The board's venv path does not exist here: point ExecStart at this checkout's.
    unit = tmp_path / "edgelstm.service"
    unit.write_text(UNIT.read_text().replace(BOARD_EDGELSTM, host_edgelstm()))
    got = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and not got.stderr.strip(), got.stderr
    # ... and verify does catch a broken unit (a misspelt key leaves no ExecStart).
    unit.write_text(unit.read_text().replace("ExecStart=", "ExecStrat="))
    bad = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "ExecStrat" in bad.stderr


def test_unit_runs_as_a_service_would():
    settings = service_settings()
    assert settings[("Install", "WantedBy")] == "multi-user.target"  # started at every boot
    assert settings[("Service", "Restart")] == "always"
    assert settings[("Service", "SuccessExitStatus")] == "143"  # `run` ends with 143 on SIGTERM
    argv = shlex.split(settings[("Service", "ExecStart")])
    assert argv[0] == BOARD_EDGELSTM and argv[1] == "run"
    state_dir = Path("/var/lib") / settings[("Service", "StateDirectory")]
    state_arg = Path(argv[argv.index("--state-file") + 1])
    assert state_arg.parent == state_dir and Path(argv[2]).parent == state_dir
    assert settings[("Service", "StandardOutput")] == f"append:{state_dir}/predictions.csv"


@pytest.mark.skipif("litert" not in exports.BACKENDS, reason="LiteRT is not installed (CI installs it)")
def test_exec_start_streams_and_resumes(tmp_path):
    """ExecStart with the board's paths moved into tmp_path: two starts, one stream."""
    argv = shlex.split(service_settings()[("Service", "ExecStart")])
    state_dir = Path(argv[2]).parent
    shutil.copy2(exports.artifact(CASE, "litert"), tmp_path / Path(argv[2]).name)
    argv = [a.replace(str(state_dir), str(tmp_path)) for a in argv]
    argv[0] = host_edgelstm()
    _, stream = zoo.inputs(CASE)
    rows = ["".join(f"{v:.8f}," for v in x).rstrip(",") + "\n" for x in stream[0, :ROWS]]
    first = subprocess.run(argv, input="".join(rows[:12]), capture_output=True, text=True, timeout=120)
    second = subprocess.run(argv, input="".join(rows[12:]), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "(12 rows seen)" in second.stderr
    lines = [ln for ln in (first.stdout + second.stdout).splitlines() if not ln.startswith("p_")]
    got = np.array([ln.split(",")[:3] for ln in lines], float)
    assert np.abs(got - zoo.reference_stream(CASE)[:ROWS]).max() <= FLOAT_TOL
