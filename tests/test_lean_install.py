"""The lean on-device install: `pip install "edgelstm[litert,onnxruntime,tflm]"` into an
empty virtual environment runs `edgelstm run / info / profile` and the Python runtime,
without TensorFlow, Keras or onnx.

One venv per test session (~20-40 s with a warm pip cache), built from a copy of the
checkout's sources so the build leaves nothing in the working tree.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exports
import zoo
from device.board_check import copy_package_sources

REPO = Path(__file__).resolve().parents[1]
LEAN_EXTRAS = "litert,onnxruntime,tflm"
HEAVY = {"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "onnx", "tf2onnx", "tensorboard", "jax", "torch"}
CASE = "lstm-last-bias-2x-softmax"
#: LiteRT / ONNX Runtime float32 vs the numpy reference (same tolerance as their own tests).
ENGINE_TOL = 1e-5
INSTALL_TIMEOUT = 600


def _run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def lean_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("lean")
    src = root / "src"
    copy_package_sources(src)
    if not (src / "README.md").exists():  # pyproject names it as the long description
        (src / "README.md").write_text("edgelstm\n")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", venv], timeout=120)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    got = _run([py, "-m", "pip", "install", "-q", f"{src}[{LEAN_EXTRAS}]"], timeout=INSTALL_TIMEOUT, env=env)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    return venv, env


def test_lean_venv_has_no_heavy_packages(lean_venv):
    venv, env = lean_venv
    listed = _run([venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"], env=env, timeout=120)
    names = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.split()}
    assert {"edgelstm", "numpy", "click", "ai-edge-litert", "onnxruntime", "tflite-micro"} <= names
    assert not names & HEAVY, sorted(names & HEAVY)


@pytest.mark.parametrize("backend", ["litert", "tflm", "onnxruntime", "numpy", "native"])
def test_exported_model_runs_in_lean_venv(lean_venv, tmp_path, backend):
    if backend not in exports.BACKENDS:  # the host side exports; CI has every exporter
        pytest.skip(f"no {backend} exporter in this environment")
    venv, env = lean_venv
    artifact = exports.artifact(CASE, backend)
    _, stream = zoo.inputs(CASE)
    rows = stream[0, :40]
    data = tmp_path / "in.csv"
    np.savetxt(data, rows, delimiter=",", fmt="%.8f")
    exe = venv / "bin" / "edgelstm"
    ran = _run([exe, "run", artifact, "-i", data, "--backend", backend], env=env, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.strip().splitlines()
    assert lines[0] == "p_0,p_1,p_2,class" and len(lines) == 41
    got = np.array([line.split(",")[:3] for line in lines[1:]], float)
    want = zoo.reference_stream(CASE)[:40]
    assert np.abs(got - want).max() <= ENGINE_TOL  # against the numpy reference, computed on the host
    info = _run([exe, "info", artifact], env=env, timeout=120)
    assert info.returncode == 0 and str(artifact) in info.stdout, info.stderr
    prof = _run([exe, "profile", artifact, "--backend", backend, "--steps", 200], env=env, timeout=120)
    assert prof.returncode == 0 and "per step   p50" in prof.stdout, prof.stderr


def test_python_runtime_in_lean_venv(lean_venv, tmp_path):
    venv, env = lean_venv
    artifact = exports.artifact(CASE, "litert" if "litert" in exports.BACKENDS else "numpy")
    code = ("import sys, numpy as np\nfrom edgelstm import runtime\n"
            f"m = runtime.load({str(artifact)!r})\n"
            "y = m.run(np.zeros((5, m.input_size), np.float32))\n"
            "assert y.shape == (5, m.output_size) and np.isfinite(y).all()\n"
            "print(sorted(k for k in ('tensorflow', 'keras', 'onnx') if k in sys.modules))\n")
    # cwd: not the checkout, whose edgelstm/ would shadow the installed package
    got = _run([venv / "bin" / "python", "-c", code], env=env, timeout=120, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["check", "m.keras", "m.tflite"], ["export", "m.keras"]])
def test_host_commands_name_the_extra(lean_venv, tmp_path, command):
    venv, env = lean_venv
    (tmp_path / "m.keras").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: passes the cheap checks
    (tmp_path / "m.tflite").write_bytes(exports.artifact(CASE, "litert").read_bytes()
                                         if "litert" in exports.BACKENDS else b"")
    got = _run([venv / "bin" / "edgelstm", *command], env=env, timeout=120, cwd=tmp_path)
    assert got.returncode == 2, got.stdout + got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and 'pip install "edgelstm[host]"' in lines[0], lines
