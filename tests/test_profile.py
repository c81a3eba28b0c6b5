"""`edgelstm profile`: latency figures, budgets and baselines, on every backend."""

import json
import os

import pytest
from click.testing import CliRunner

import exports
from edgelstm.cli import cli
from edgelstm.latency import summarize

CASE = "lstm-last-bias-2x-softmax"
STEPS = 300  # enough for stable percentiles of a ~10-100 us step, a fraction of a second


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def profile_json(tmp_path, *args):
    out = tmp_path / "profile.json"
    result = invoke("profile", *args, "--json", out)
    return result, (json.loads(out.read_text()) if out.exists() else None)


def test_summarize_known_values():
    ns = [1000 * k for k in range(1, 101)]  # 1..100 us
    s = summarize(ns)
    assert s["p50_us"] == pytest.approx(50.5) and s["p90_us"] == pytest.approx(90.1)
    assert s["p99_us"] == pytest.approx(99.01) and s["max_us"] == 100 and s["min_us"] == 1
    assert s["steps_per_s"] == pytest.approx(100 / (5050e-6))


@pytest.mark.parametrize("backend", exports.BACKENDS)
def test_json_carries_every_field(tmp_path, backend):
    path = exports.artifact(CASE, backend)
    result, data = profile_json(tmp_path, path, "--backend", backend, "--steps", STEPS, "--warmup", 20)
    assert result.exit_code == 0, result.output + result.stderr
    lat = data["latency"]
    assert 0 < lat["min_us"] <= lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["max_us"]
    assert lat["steps_per_s"] == pytest.approx(1e6 / lat["mean_us"], rel=1e-6)
    assert data["backend"] == backend and data["steps"] == STEPS and data["streams"] == 1
    assert data["file_bytes"] == os.path.getsize(path)
    assert data["format"] == exports.FORMATS[backend]
    mem = data["memory"]
    # Linux updates the peak (ru_maxrss) lazily, so it can trail a fresh VmRSS reading a little.
    assert mem["peak_rss_bytes"] >= 0.95 * mem["rss_after_load_bytes"] and mem["rss_after_load_bytes"] > 10 << 20
    machine = data["machine"]
    assert machine["cores"] == os.cpu_count() and machine["python"] and machine["cpu"]
    engine = {"numpy": "numpy", "litert": "ai-edge-litert", "tflm": "tflite-micro", "onnxruntime": "onnxruntime",
              "native": "cc"}
    assert engine[backend] in machine["versions"]
    # The human-readable report names the same figures.
    assert f"p50 {lat['p50_us']:.1f} us" in result.stdout


def test_streams_and_threads(tmp_path):
    result, data = profile_json(tmp_path, exports.artifact(CASE, "numpy"), "--steps", 100, "--streams", 4,
                                "--threads", 2)
    assert result.exit_code == 0
    assert data["streams"] == 4 and data["threads"] == 2
    assert data["latency"]["stream_steps_per_s"] == pytest.approx(4 * data["latency"]["steps_per_s"])


def test_window_costs_about_window_steps(tmp_path):
    """Re-running a T-step window per sample costs ~T steps (plus a reset): ratio near T."""
    window = 16
    result, data = profile_json(tmp_path, exports.artifact(CASE, "numpy"), "--steps", STEPS, "--window", window)
    assert result.exit_code == 0
    w = data["window"]
    assert w["window"] == window and w["samples"] >= 20
    # Loose bounds: a shared CI machine can slow either side; the point is the order of magnitude.
    assert window / 3 <= w["ratio_p50"] <= window * 3
    assert f"{w['ratio_p50']:.1f}x stepping" in result.stdout


def test_impossible_p99_budget_exits_1_with_reason(tmp_path):
    result, data = profile_json(tmp_path, exports.artifact(CASE, "numpy"), "--steps", 100, "--max-p99-us", 0.001)
    assert result.exit_code == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("FAIL: p99 ") and "exceeds --max-p99-us 0.001" in reason
    assert data["budget"]["ok"] is False  # the JSON is written either way, for the CI artifact


def test_generous_p99_budget_passes(tmp_path):
    result, data = profile_json(tmp_path, exports.artifact(CASE, "numpy"), "--steps", 100, "--max-p99-us", 1e9)
    assert result.exit_code == 0 and data["budget"]["ok"] is True
    assert "FAIL" not in result.stderr


@pytest.mark.parametrize("baseline_p50, allowed, code", [(1e-3, 10, 1), (1e9, 10, 0)])
def test_baseline_regression_gate(tmp_path, baseline_p50, allowed, code):
    """A baseline far faster than any machine must fail the gate; a far slower one pass."""
    path = exports.artifact(CASE, "numpy")
    first, base = profile_json(tmp_path, path, "--steps", 100)
    base["latency"]["p50_us"] = baseline_p50
    base["machine"]["cpu"] = "Some Other CPU"
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(base))
    result, data = profile_json(tmp_path, path, "--steps", 100, "--baseline", baseline, "--max-regression", allowed)
    assert result.exit_code == code, result.stderr
    budget = data["budget"]
    assert budget["baseline_us"] == base["latency"]["p50_us"] and budget["baseline_metric"] == "p50_us"
    assert budget["change_pct"] == pytest.approx(100 * (data["latency"]["p50_us"] / budget["baseline_us"] - 1))
    assert "warning: the baseline was measured on another CPU (Some Other CPU)" in result.stderr
    if code:
        assert result.stderr.strip().splitlines()[-1].startswith("FAIL: p50 ")
        assert f"allowed +{allowed:g}%" in result.stderr


def test_budget_options_are_checked(tmp_path):
    path = exports.artifact(CASE, "numpy")
    result = invoke("profile", path, "--max-regression", 10)
    assert result.exit_code == 2 and "--max-regression needs --baseline" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = invoke("profile", path, "--baseline", bad)
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    bad.write_text('{"steps": 3}')
    result = invoke("profile", path, "--baseline", bad)
    assert result.exit_code == 2 and "no 'latency' section" in result.stderr


def test_missing_or_wrong_file_is_one_line(tmp_path):
    result = invoke("profile", tmp_path / "nope.tflite")
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {tmp_path / 'nope.tflite'}: no such file"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage")
    result = invoke("profile", junk)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
