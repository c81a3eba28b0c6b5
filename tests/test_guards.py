"""Checks that cannot be fooled: NaN / inf fail every threshold, a diverging reference
is said to diverge, the check on write uses held-out data of the model's own window,
and int8 saturation is counted and reported wherever a quantized model runs.

The model is the seed's own example: ``LSTM(50, activation='relu')`` + ``Dense(1)``
trained on [[1,2,3],[2,3,4],[3,4,5]] -> [4,5,6]. relu is unbounded, so over a long
stream of those values its float output grows without bound (the reference diverges),
and its answers lie far outside what synthetic calibration covers.
"""

import json
import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import QUERY, SEED_X
from edgelstm.cli import cli

NAN, INF = float("nan"), float("inf")
#: The acceptance bar of the seed example: an int8 answer within 5 % of Keras is fine.
SEED_REL_TOL = 0.05


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture(scope="session")
def toy_int8(toy_dir):
    """int8 with the default calibration (synthetic: the model has no recorded data)."""
    out = toy_dir / "int8"
    result = invoke("export", toy_dir / "toy.keras", "--format", "tflite", "--quantize", "int8", "-o", out)
    assert result.exit_code == 0, result.output + result.stderr
    return out / "toy.int8.tflite", result


# -- NaN and inf fail every threshold -------------------------------------------------------

@pytest.mark.parametrize("bad", [NAN, INF])
def test_check_thresholds_fail_on_nan_and_inf(bad):
    from edgelstm.check import check_thresholds

    report = {"max_abs_err": bad, "agreement": bad}
    broken = check_thresholds(report, max_abs_err=0.05, min_agreement=0.9)
    assert len(broken) == 2, broken
    assert report["thresholds"]["ok"] is False


@pytest.mark.parametrize("bad", [NAN, INF])
def test_profile_budgets_fail_on_nan_and_inf(bad):
    from edgelstm.latency import check_budgets

    result = {"latency": {"p99_us": bad, "p50_us": bad}}
    baseline = {"latency": {"p50_us": 10.0}}
    broken = check_budgets(result, max_p99_us=100.0, baseline=baseline, max_regression_pct=50.0)
    assert len(broken) == 2, broken
    assert result["budget"]["ok"] is False


@pytest.mark.parametrize("bad", [NAN, INF])
def test_export_gate_fails_on_nan_and_inf(bad):
    from edgelstm.converters.guard import gate_failures

    assert gate_failures({"max_abs_err": bad, "agreement": bad}, min_agreement=0.5, max_rmse_change=None)
    assert gate_failures({"max_abs_err": bad, "rmse_change": bad}, min_agreement=None, max_rmse_change=1e9)
    # a finite error with an unmeasurable figure is no pass either
    assert gate_failures({"max_abs_err": 0.0, "rmse_change": bad}, min_agreement=None, max_rmse_change=1e9)


def test_export_gate_known_values():
    from edgelstm.converters.guard import gate_failures

    assert gate_failures({"max_abs_err": 0.1, "agreement": 0.95}, min_agreement=0.98, max_rmse_change=None)
    assert not gate_failures({"max_abs_err": 0.1, "agreement": 0.99}, min_agreement=0.98, max_rmse_change=None)
    assert gate_failures({"max_abs_err": 0.1, "rmse_change": 0.07}, min_agreement=None, max_rmse_change=5)
    assert not gate_failures({"max_abs_err": 0.1, "rmse_change": 0.04}, min_agreement=None, max_rmse_change=5)


# -- a diverging reference ------------------------------------------------------------------

def test_check_reports_a_diverging_reference(toy_dir, toy_npz):
    # The float npz of the same model: any difference would be float noise, but the
    # reference itself overflows on this stream, so there is nothing to compare.
    result = invoke("check", toy_dir / "toy.keras", toy_npz, "--data", toy_dir / "seq.csv",
                    "--max-abs-err", "0.05", "--json", toy_dir / "check.json")
    assert result.exit_code == 1, result.output + result.stderr
    assert "reference" in result.stderr and "diverge" in result.stderr, result.stderr
    report = json.loads((toy_dir / "check.json").read_text())
    assert report["reference_diverged_at"] is not None
    assert report["thresholds"]["ok"] is False
    assert "nan" not in result.output.replace("NaN", "").lower() or "diverge" in result.output


def test_check_without_thresholds_still_fails_on_divergence(toy_dir, toy_npz):
    result = invoke("check", toy_dir / "toy.keras", toy_npz, "--data", toy_dir / "seq.csv")
    assert result.exit_code == 1, result.output + result.stderr
    assert "diverge" in result.stderr


def test_verification_never_prints_nan_without_the_reason(toy_dir, toy_npz, capsys):
    from edgelstm.converters import ExportOptions, verify
    from edgelstm.keras_import import load_model_spec

    spec = load_model_spec(toy_dir / "toy.keras")
    long = np.tile(SEED_X.reshape(-1), 200)[None, :, None].astype(np.float32)  # 1800 steps of 1..5
    lines = []
    report = verify(spec, toy_npz, ExportOptions(heldout=long), echo=lines.append)
    assert report["reference_diverged"] is True
    assert len(lines) == 1 and "diverge" in lines[0], lines
    desc = json.loads((toy_npz.parent / "toy.npz.json").read_text())
    assert desc["verification"]["reference_diverged"] is True


def test_verification_streams_every_heldout_sequence_up_to_its_cap(toy_dir, toy_npz):
    """The gate is only as good as its sample: a problem in the 40th held-out sequence
    must show (it did not when the check stopped at 16 sequences)."""
    from edgelstm.converters import VERIFY_HELDOUT_SEQUENCES, ExportOptions, verify
    from edgelstm.keras_import import load_model_spec

    spec = load_model_spec(toy_dir / "toy.keras")
    calm = np.full((40, 300, 1), 0.1, np.float32)
    calm[-1] = np.tile(SEED_X.reshape(-1), 34)[:300, None]  # only the last one diverges (relu)
    report = verify(spec, toy_npz, ExportOptions(heldout=calm), echo=lambda line: None)
    assert report["sequences"] == 40 and report["reference_diverged"] is True
    many = np.full((VERIFY_HELDOUT_SEQUENCES + 8, 3, 1), 0.1, np.float32)
    assert verify(spec, toy_npz, ExportOptions(heldout=many), echo=lambda line: None)["sequences"] == \
        VERIFY_HELDOUT_SEQUENCES


# -- the check on write: held-out data, the model's window, labelled --------------------------

def test_float_tflite_check_on_write_uses_the_window_and_says_synthetic(toy_dir):
    out = toy_dir / "f32"
    result = invoke("export", toy_dir / "toy.keras", "--format", "tflite", "-o", out)
    assert result.exit_code == 0, result.output + result.stderr
    ver = json.loads((out / "toy.tflite.json").read_text())["verification"]
    assert ver["steps"] == 3  # the model's own Input((3, 1)), not 100 steps
    assert ver["synthetic_data"] is True
    assert "synthetic" in result.stderr
    assert "calibration" not in result.stderr  # float32 uses no calibration: no warning about it
    assert math.isfinite(ver["max_abs_err"])


def test_heldout_split_is_disjoint_and_in_one_place():
    from edgelstm.converters.sequences import split_heldout

    x = np.arange(10 * 4 * 2, dtype=np.float32).reshape(10, 4, 2)
    y = np.arange(10)
    x_cal, y_cal, x_held, y_held = split_heldout(x, y)
    assert len(x_cal) + len(x_held) == 10 and len(x_held) >= 1
    assert not set(y_cal.tolist()) & set(y_held.tolist())
    np.testing.assert_array_equal(x[y_held], x_held)  # targets stay with their windows
    # a single long sequence is split in time: the tail is held out
    one = np.arange(50, dtype=np.float32).reshape(1, 50, 1)
    x_cal, _, x_held, _ = split_heldout(one, None)
    assert x_cal.shape[1] + x_held.shape[1] == 50 and x_held.min() > x_cal.max()


@pytest.mark.parametrize("fmt, quantize", [("npz", "float32"), ("c", "int8")])
def test_export_leaves_the_callers_options_as_they_were(tmp_path, fmt, quantize):
    """The held-out split happens on a copy: options reused for a second export still
    calibrate on all the data they were given."""
    import zoo
    from edgelstm.converters import ExportOptions, export

    calib = np.random.default_rng(0).uniform(-1, 1, (10, 30, 3)).astype(np.float32)
    options = ExportOptions(quantize=quantize, calibration=calib, basename="m")
    export(zoo.spec("lstm-act_tanh"), fmt, tmp_path, options, echo=lambda line: None)
    assert options.calibration is calib and options.heldout is None and options.heldout_source is None


def test_int8_check_on_write_is_not_on_the_calibration_data(toy_dir):
    out = toy_dir / "int8_train"
    result = invoke("export", toy_dir / "toy.keras", "--format", "tflite", "--quantize", "int8",
                    "--calibration-data", toy_dir / "train.npz", "-o", out)
    assert result.exit_code == 0, result.output + result.stderr
    desc = json.loads((out / "toy.int8.tflite.json").read_text())
    assert desc["calibration"]["sequences"] + desc["verification"]["sequences"] == 3
    assert desc["verification"]["data"].startswith("held out from calibration")
    assert "held out" in result.stderr


# -- int8 saturation: recorded, counted, warned, gated --------------------------------------

def test_quantized_description_records_calibrated_ranges(toy_int8):
    path, _ = toy_int8
    cal = json.loads(path.with_name(path.name + ".json").read_text())["calibration"]
    lo, hi = cal["input_range"]
    assert lo < 0 < hi and hi < 4  # standard-normal synthetic inputs: nowhere near 4, 5, 6
    out_lo, out_hi = cal["output_range"]
    assert out_lo < out_hi


def test_seed_int8_is_right_or_warns_on_run_and_fails_the_export_gate(toy_dir, toy_int8):
    path, _ = toy_int8
    keras_answer = float(np.load(toy_dir / "keras_query.npy")[0])
    result = invoke("run", path, input="4\n5\n6\n")
    assert result.exit_code == 0, result.output + result.stderr
    answer = float(result.stdout.strip().splitlines()[-1])
    if abs(answer - keras_answer) <= SEED_REL_TOL * abs(keras_answer):
        return  # right: nothing to warn about
    warned = [ln for ln in result.stderr.splitlines() if "calibrated" in ln]
    assert len(warned) == 1, result.stderr
    assert "3 of 3 rows (100%)" in warned[0]
    # The same default (synthetic) calibration cannot vouch for real inputs: the gate fails.
    out = toy_dir / "gated"
    gate = invoke("export", toy_dir / "toy.keras", "--format", "tflite", "--quantize", "int8",
                  "--max-rmse-change", "5", "-o", out)
    assert gate.exit_code == 1, gate.output + gate.stderr
    assert gate.stderr.strip().splitlines()[-1].startswith("FAIL: ")
    assert not out.exists()


def test_runtime_counts_out_of_range_rows_and_warns_once(toy_int8):
    from edgelstm import runtime
    from edgelstm.runtime import CalibrationRangeWarning

    path, _ = toy_int8
    model = runtime.load(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.run(QUERY)
        model.run(QUERY)
    assert len([w for w in caught if issubclass(w.category, CalibrationRangeWarning)]) == 1
    summary = model.range_summary()
    assert summary["rows"] == 6 and summary["inputs_outside"] == 6
    assert summary["outputs_pinned"] >= 1
    # a callback instead of the warnings module
    seen = []
    quiet = runtime.load(path, on_range=seen.append)
    quiet.run(QUERY)
    assert len(seen) == 1 and seen[0]["inputs_outside"] >= 1


def test_in_range_inputs_are_not_counted(toy_int8):
    from edgelstm import runtime

    path, _ = toy_int8
    model = runtime.load(path, on_range=lambda s: pytest.fail(f"warned in range: {s}"))
    model.run(np.zeros((5, 1), np.float32))
    assert model.range_summary()["inputs_outside"] == 0


def test_check_reports_the_out_of_range_share(toy_dir, toy_int8):
    path, _ = toy_int8
    data = toy_dir / "query.csv"
    data.write_text("4\n5\n6\n")
    result = invoke("check", toy_dir / "toy.keras", path, "--data", data, "--steps", "3", "--json", "-")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert report["calibrated_range"]["inputs_outside"] == 3


def test_profile_warns_once_about_the_calibrated_range(toy_int8):
    path, _ = toy_int8
    result = invoke("profile", path, "--steps", "50", "--warmup", "0")
    assert result.exit_code == 0, result.output + result.stderr
    assert len([ln for ln in result.stderr.splitlines() if "calibrated" in ln]) == 1, result.stderr


def test_calibration_warning_only_where_calibration_is_used(toy_dir, toy_int8):
    _, result = toy_int8
    assert len([ln for ln in result.stderr.splitlines() if "no real calibration" in ln]) == 1
    dyn = invoke("export", toy_dir / "toy.keras", "--format", "tflite", "--quantize", "dynamic",
                 "-o", toy_dir / "dyn")
    assert dyn.exit_code == 0, dyn.output + dyn.stderr
    assert "no real calibration" not in dyn.stderr
    bad = invoke("export", toy_dir / "toy.keras", "--format", "onnx", "--quantize", "int8", "-o", toy_dir / "bad")
    assert bad.exit_code == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith("error: "), bad.stderr


def test_impossible_gate_exits_1_and_writes_nothing_generous_passes(toy_dir):
    out = toy_dir / "gate_npz"
    out.mkdir()
    (out / "toy.npz").write_bytes(b"an older file the failed export must not replace")
    bad = invoke("export", toy_dir / "toy.keras", "--calibration-data", toy_dir / "train.npz",
                 "--max-rmse-change", "-100", "-o", out)
    assert bad.exit_code == 1, bad.output + bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith("FAIL: "), bad.stderr
    assert sorted(p.name for p in out.iterdir()) == ["toy.npz"]
    assert (out / "toy.npz").read_bytes().startswith(b"an older file")
    good = invoke("export", toy_dir / "toy.keras", "--calibration-data", toy_dir / "train.npz",
                  "--max-rmse-change", "1000", "-o", out)
    assert good.exit_code == 0, good.output + good.stderr
    assert sorted(p.name for p in out.iterdir()) == ["toy.npz", "toy.npz.json"]


def test_a_gate_on_synthetic_data_cannot_pass(toy_dir):
    out = toy_dir / "gate_synth"
    result = invoke("export", toy_dir / "toy.keras", "--max-rmse-change", "1000", "-o", out)
    assert result.exit_code == 1, result.output + result.stderr
    assert "synthetic" in result.stderr
    assert not out.exists()


def test_min_agreement_on_a_regressor_is_a_usage_error(toy_dir):
    result = invoke("export", toy_dir / "toy.keras", "--calibration-data", toy_dir / "train.npz",
                    "--min-agreement", "0.9", "-o", toy_dir / "gate_cls")
    assert result.exit_code == 2 and result.stderr.startswith("error: "), result.stderr


def test_quality_warning_names_int16x8_or_the_cause():
    from edgelstm.converters.guard import quality_warnings

    low = quality_warnings({"max_abs_err": 0.3, "agreement": 0.9}, "int8")
    assert len(low) == 1 and "int16x8" in low[0]
    diverged = quality_warnings({"max_abs_err": NAN, "reference_diverged": True}, "int8")
    assert len(diverged) == 1 and "diverge" in diverged[0]
    broken = quality_warnings({"max_abs_err": INF, "reference_diverged": False}, "float32")
    assert len(broken) == 1 and "not finite" in broken[0]
    assert quality_warnings({"max_abs_err": 0.01, "agreement": 0.99}, "int8") == []
