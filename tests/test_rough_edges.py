"""What a new user trips on: stderr noise, CSV dialects, partial files, windowed checks,
several exports in one call, and the small API corners."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import QUERY, invoke_cli as invoke
from edgelstm.runtime import reference

FLOAT_TOL = 1e-5  # float32 artifact vs float32 Keras / numpy reference, as in test_reference.py


def test_user_error_after_tensorflow_is_one_line(toy_dir, tmp_path):
    """A host command that imported TensorFlow still says its error in one line (no absl /
    oneDNN start-up lines): run in a real process, where native code writes to fd 2."""
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 7), np.float32))  # 7 features; the model takes 1
    proc = subprocess.run([sys.executable, "-m", "edgelstm", "export", str(toy_dir / "toy.keras"),
                           "--calibration-data", str(bad), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.npy" in lines[0], proc.stderr


def test_native_noise_filter_keeps_real_errors(tmp_path):
    code = (
        "import os\n"
        "from edgelstm.runtime.native_stderr import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'E0000 00:00:1.0 1 kernel.cc:1] a real error\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr == "E0000 00:00:1.0 1 kernel.cc:1] a real error\n"


def test_python_dash_m_edgelstm():
    proc = subprocess.run([sys.executable, "-m", "edgelstm", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("edgelstm, version"), proc.stderr


def test_step_takes_a_scalar_for_one_feature(toy_dir, toy_npz):
    from edgelstm import runtime
    from edgelstm.keras_import import load_model_spec

    model = runtime.load(toy_npz)
    got = np.stack([model.step(float(v)) for v in QUERY[:, 0]])
    want, _ = reference.run_sequence(load_model_spec(toy_dir / "toy.keras"), QUERY[None])
    np.testing.assert_allclose(got, want[0], atol=FLOAT_TOL)
    model.reset()
    np.testing.assert_allclose(model.run(QUERY[:, 0]), want[0], atol=FLOAT_TOL)  # (T,) for one feature


def test_runtime_offers_only_its_api():
    from edgelstm import runtime

    assert dir(runtime) == sorted(runtime.__all__)
    assert all(hasattr(runtime, name) for name in runtime.__all__)
    namespace = {}
    exec("from edgelstm.runtime import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(runtime.__all__)


# -- run -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sep", [";", "\t"])
def test_run_reads_semicolon_and_tab_files(npz_three, sep):
    path, spec = npz_three
    rows = np.array([[0.1, -0.2, 0.5], [0.3, 0.4, -0.1], [-0.5, 0.6, 0.2]], np.float32)
    text = f"a{sep}b{sep}c\n" + "".join(sep.join(str(v) for v in r) + "\n" for r in rows)
    result = invoke("run", path, input=text)
    assert result.exit_code == 0, result.stderr
    got = np.array([line.split(",") for line in result.stdout.splitlines()[1:]], np.float32)
    want, _ = reference.run_sequence(spec, rows[None])
    np.testing.assert_allclose(got, want[0], atol=FLOAT_TOL)


def test_run_refuses_a_header_of_the_wrong_width(npz_three):
    path, _ = npz_three
    result = invoke("run", path, input="a;b\n1;2\n")  # one feature short
    assert result.exit_code == 2
    assert result.stderr.startswith("error: input line 1: the header has 2 columns"), result.stderr


def test_run_skip_keeps_output_rows_aligned(npz_three):
    path, spec = npz_three
    result = invoke("run", path, "--on-bad-row", "skip", input="0.1,0.2,0.3\nnan,1,2\n0.3,0.4,0.5\n")
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()[1:]
    assert len(out) == 3 and out[1] == "," * (spec.output_size - 1)
    want, _ = reference.run_sequence(spec, np.array([[[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]]], np.float32))
    np.testing.assert_allclose(np.array(out[2].split(","), np.float32), want[0, 1], atol=FLOAT_TOL)


def test_run_leaves_no_partial_output_file(npz_three, tmp_path):
    path, _ = npz_three
    dst = tmp_path / "out.csv"
    result = invoke("run", path, "-o", dst, input="0.1,0.2,0.3\n0.3,text,1\n")
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []
    result = invoke("run", path, "-o", dst, input="0.1,0.2,0.3\n")
    assert result.exit_code == 0 and len(dst.read_text().splitlines()) == 2


def test_run_last_only_answers_the_seed_query(toy_dir, toy_npz):
    keras_answer = float(np.load(toy_dir / "keras_query.npy")[0])
    result = invoke("run", toy_npz, "--last-only", input="4\n5\n6\n")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "y0" and len(lines) == 2
    assert abs(float(lines[1]) - keras_answer) <= FLOAT_TOL * max(1.0, abs(keras_answer))


# -- check --reset-every ------------------------------------------------------------------------

def test_check_with_resets_per_window_does_not_diverge(toy_dir, toy_npz):
    # The same stream diverges as one unbroken stream (test_guards); window by window,
    # the way the seed model is used, the float export matches Keras.
    result = invoke("check", toy_dir / "toy.keras", toy_npz, "--data", toy_dir / "seq.csv",
                    "--reset-every", "window", "--max-abs-err", str(FLOAT_TOL * 10), "--json", "-")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reset_every"] == 3 and report["reference_diverged_at"] is None
    assert report["max_abs_err"] <= FLOAT_TOL * 10  # outputs up to ~10: relative float32 noise


def test_check_reset_every_refuses_nonsense(toy_dir, toy_npz):
    result = invoke("check", toy_dir / "toy.keras", toy_npz, "--reset-every", "often")
    assert result.exit_code == 2 and result.stderr.startswith("error: --reset-every"), result.stderr


# -- profile --baseline of another model ----------------------------------------------------------

def test_profile_warns_when_the_baseline_is_another_model(toy_npz, npz_three, tmp_path):
    base = tmp_path / "base.json"
    assert invoke("profile", toy_npz, "--steps", "20", "--warmup", "0", "--json", base).exit_code == 0
    same = invoke("profile", toy_npz, "--steps", "20", "--warmup", "0", "--baseline", base)
    assert same.exit_code == 0 and "another model" not in same.stderr
    other = invoke("profile", npz_three[0], "--steps", "20", "--warmup", "0", "--baseline", base)
    assert other.exit_code == 0 and "baseline measured another model" in other.stderr, other.stderr


# -- export: several variants in one call -----------------------------------------------------------

def test_export_several_formats_and_quantizations(toy_dir, tmp_path):
    result = invoke("export", toy_dir / "toy.keras", "--format", "npz,onnx", "--quantize", "float32,dynamic",
                    "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    # npz has no dynamic: skipped, the rest follows the naming rule
    assert written == ["toy.dynamic.onnx", "toy.dynamic.onnx.json", "toy.npz", "toy.npz.json", "toy.onnx",
                       "toy.onnx.json"], written
    assert "skipped" in result.stderr and "npz" in result.stderr


def test_export_all_covers_every_exporter():
    from edgelstm import converters
    from edgelstm.export_variants import variants

    todo = variants("npz", "float32", "step", all_variants=True)
    for fmt in converters.EXPORTERS:
        module = converters.exporter(fmt)
        assert {(fmt, q) for q in module.QUANTIZATIONS} <= set(todo)


def test_sequence_mode_is_refused_by_run_with_a_hint(toy_dir, tmp_path):
    result = invoke("export", toy_dir / "toy.keras", "--format", "onnx", "--mode", "sequence", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    run = invoke("run", tmp_path / "toy.sequence.onnx", input="1\n")
    assert run.exit_code == 2 and "--mode step" in run.stderr, run.stderr


# -- train -------------------------------------------------------------------------------------------

def test_train_prints_one_line_per_epoch(tmp_path):
    result = invoke("train", "--dataset", "toy", "--units", "4", "--epochs", "3", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    epochs = [ln for ln in result.stderr.splitlines() if ln.strip().startswith("epoch ")]
    assert [ln.split()[1] for ln in epochs] == ["1/3", "2/3", "3/3"] and all("loss" in ln for ln in epochs)


@pytest.fixture(scope="module")
def npz_three(tmp_path_factory):
    """A small float model of the zoo (3 features, seeded weights), as .npz."""
    import zoo
    from edgelstm.converters import ExportOptions, export

    spec = zoo.spec("gru-seq-bias-1x-timedistributed")
    assert spec.input_size == 3
    path = export(spec, "npz", tmp_path_factory.mktemp("three"), ExportOptions(basename="three"))[0]
    return path, spec


def test_json_reports_are_strict_json_with_nan_as_null(tmp_path):
    """A --json report is read by machines: NaN / inf become null, never a bare NaN token."""
    import numpy as np

    from edgelstm.cli_output import write_json as _write_json

    path = tmp_path / "r.json"
    _write_json(str(path), {"err": float("nan"), "p99": [1.5, float("inf")], "n": np.float32("-inf"),
                            "ok": np.float64(2.0), "nested": {"x": np.float32(np.nan)}})

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data == {"err": None, "p99": [1.5, None], "n": None, "ok": 2.0, "nested": {"x": None}}
