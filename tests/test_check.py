"""`edgelstm check`: an export against the Keras model over long streams."""

import builtins
import json

import numpy as np
import pytest
from click.testing import CliRunner

import exports
import zoo
from edgelstm.check import error_growth, long_stream, streaming_twin
from edgelstm.cli import cli
from edgelstm.runtime import load

CLASSIFIER = "lstm-last-bias-2x-softmax"
KERAS_TOL = 1e-5  # float32 export vs float32 Keras over 2000 steps (see test_reference.py)
#: int8 weights, activations and states; softmax probabilities quantized in steps of 1/256:
#: about 5 output steps over a 2000-step stream (measured: 2.6e-3 max, no drift).
INT8_TOL = 0.02
STEPS = 2000


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    """300 rows of 3 features in the zoo's input range: shorter than the stream, so repeated."""
    path = tmp_path_factory.mktemp("check") / "sensor.csv"
    rows = np.random.default_rng(21).uniform(-1, 1, (300, 3))
    path.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.6f}" for v in r) for r in rows) + "\n")
    return path


def keras_answer(case_id, stream):
    """Keras' own streaming outputs, through the tests' twin (not edgelstm.check's)."""
    return np.asarray(zoo.streaming_twin(zoo.keras_model(case_id)).predict(stream[None], verbose=0))[0]


def check_json(tmp_path, *args):
    out = tmp_path / "check.json"
    result = invoke("check", *args, "--json", out)
    return result, (json.loads(out.read_text()) if out.exists() else None)


# -- the pieces ---------------------------------------------------------------------------------

def test_long_stream_concatenates_and_repeats():
    seqs = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    stream = long_stream(seqs, 10)
    flat = seqs.reshape(-1, 2)
    np.testing.assert_array_equal(stream[:6], flat)
    np.testing.assert_array_equal(stream[6:], flat[:4])
    np.testing.assert_array_equal(long_stream(seqs, 4), flat[:4])


def test_error_growth_finds_a_known_slope():
    err = np.linspace(0, 1, 1000)[:, None] * np.ones((1, 2))  # error rises by 1 over 1000 steps
    g = error_growth(err, 10)
    assert len(g["segments"]) == 10 and g["segments"][-1]["stop"] == 1000
    assert g["slope_per_1000_steps"] == pytest.approx(1.0, rel=1e-2)
    flat = error_growth(np.full((1000, 1), 0.01), 10)
    assert flat["slope_per_1000_steps"] == pytest.approx(0.0, abs=1e-12) and flat["last_over_first"] == 1.0


TWIN_TOL = 1e-6


@pytest.mark.parametrize("case_id", [CLASSIFIER, "lstm-normalization", "gru-rescaling-dense3d",
                                     "rnn-dropout-softmax", "gru_v1-last-nobias-1x-none", "gru-adapted-denormalize",
                                     "lstm-seq-bias-2x-timedistributed"])
def test_streaming_twin_matches_keras(case_id):
    _, stream = zoo.inputs(case_id)
    twin = streaming_twin(zoo.keras_model(case_id))
    got = np.asarray(twin.predict(stream[:, :300], verbose=0))[0]
    # Both are Keras on the same weights and inputs: only kernel scheduling differs.
    np.testing.assert_allclose(got, zoo.keras_stream(case_id)[:300], atol=TWIN_TOL)


# -- the command ----------------------------------------------------------------------------------

def test_float_export_agrees_with_keras(tmp_path, keras_file, data_csv):
    result, report = check_json(tmp_path, keras_file(CLASSIFIER), exports.export(CLASSIFIER, "npz"),
                                "--data", data_csv, "--steps", STEPS, "--max-abs-err", KERAS_TOL,
                                "--min-agreement", 1.0)
    assert result.exit_code == 0, result.output + result.stderr
    assert report["reference"] == "keras" and report["steps"] == STEPS and report["repeated"] is True
    assert report["data_rows"] == 300
    assert report["max_abs_err"] <= KERAS_TOL and report["agreement"] == 1.0
    assert len(report["growth"]["segments"]) == 10


def test_adapted_normalization_survives_the_saved_file(tmp_path, keras_file):
    """The training recipe (adapted input scaling, inverse output scaling) through a saved
    .keras file: the twin must take the adapted statistics, not the layer's defaults."""
    case_id = "gru-adapted-denormalize"
    _, stream = zoo.inputs(case_id)
    np.savez(tmp_path / "d.npz", x=stream[:, :500])
    result, report = check_json(tmp_path, keras_file(case_id), exports.export(case_id, "npz"),
                                "--data", tmp_path / "d.npz", "--steps", 500)
    assert result.exit_code == 0, result.output + result.stderr
    assert report["reference"] == "keras"
    assert report["max_abs_err"] <= KERAS_TOL


@pytest.mark.parametrize("backend", [b for b in exports.BACKENDS if b in ("litert", "tflm")])
def test_int8_drift_over_2000_steps(tmp_path, keras_file, data_csv, backend):
    artifact = exports.export(CLASSIFIER, "tflite", "int8")
    plot = tmp_path / "err.png"
    result, report = check_json(tmp_path, keras_file(CLASSIFIER), artifact, "--data", data_csv,
                                "--steps", STEPS, "--backend", backend, "--plot", plot)
    assert result.exit_code == 0, result.output + result.stderr
    # The figures, recomputed independently: Keras' answer vs the artifact through the runtime.
    stream = np.loadtxt(data_csv, delimiter=",", skiprows=1, dtype=np.float32)
    stream = np.concatenate([stream] * 7)[:STEPS]
    want = keras_answer(CLASSIFIER, stream)
    got = load(artifact, backend=backend).run(stream)
    err = np.abs(got.astype(np.float64) - want)
    assert report["max_abs_err"] == pytest.approx(err.max(), rel=1e-6)
    assert report["mean_abs_err"] == pytest.approx(err.mean(), rel=1e-6)
    assert report["agreement"] == pytest.approx(np.mean(want.argmax(-1) == got.argmax(-1)))
    seg = report["growth"]["segments"]
    assert [s["start"] for s in seg] == list(range(0, STEPS, STEPS // 10))
    assert seg[3]["mean_abs_err"] == pytest.approx(err[600:800].mean(), rel=1e-6)
    # int8 loses something, but not much, and does not blow up along the stream.
    assert 1e-4 < report["max_abs_err"] < INT8_TOL
    assert max(s["max_abs_err"] for s in seg[5:]) < INT8_TOL
    assert "drift" in result.stdout and "agreement" in result.stdout
    png = plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert report["plot"] == str(plot)


def test_thresholds_exit_1_with_reason(tmp_path, keras_file, data_csv):
    artifact = exports.export(CLASSIFIER, "npz")
    result, report = check_json(tmp_path, keras_file(CLASSIFIER), artifact, "--data", data_csv,
                                "--steps", 500, "--max-abs-err", 0)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("FAIL: max abs error ")
    assert report["thresholds"]["ok"] is False
    result = invoke("check", keras_file(CLASSIFIER), artifact, "--data", data_csv, "--steps", 500,
                    "--min-agreement", 1.5)
    assert result.exit_code == 2  # out of range: a usage error


def test_min_agreement_needs_a_classifier(tmp_path, keras_file, data_csv):
    case = "gru_v1-last-nobias-1x-none"
    result = invoke("check", keras_file(case), exports.export(case, "npz"), "--data", data_csv, "--steps", 50,
                    "--min-agreement", 0.9)
    assert result.exit_code == 2 and "needs a classifier" in result.stderr


def test_bundled_dataset_and_npz_reference(tmp_path):
    """The airline series (1 feature) through a 1-feature model; the .npz spec as reference."""
    case = "lstm-relu-seed"
    npz = exports.export(case, "npz")
    result, report = check_json(tmp_path, npz, npz, "--dataset", "airline", "--steps", 400)
    assert result.exit_code == 0, result.stderr
    assert report["reference"] == "numpy reference" and report["max_abs_err"] == 0.0
    assert "airline" in report["data"]


def test_plot_without_matplotlib_names_the_extra(tmp_path, keras_file, data_csv, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = invoke("check", keras_file(CLASSIFIER), exports.export(CLASSIFIER, "npz"), "--data", data_csv,
                    "--plot", tmp_path / "x.png")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        'error: --plot needs matplotlib, which is not installed: pip install "edgelstm[plot]"')
    assert not (tmp_path / "x.png").exists()


def test_mismatched_model_and_artifact(tmp_path, keras_file, data_csv):
    result = invoke("check", keras_file(CLASSIFIER), exports.export("lstm-normalization", "npz"),
                    "--data", data_csv, "--steps", 50)
    assert result.exit_code == 2 and "not the same model" in result.stderr
