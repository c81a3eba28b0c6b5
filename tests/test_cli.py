"""The command line, tested through the command line."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from edgelstm.cli import cli
from edgelstm.runtime import reference

KERAS_TOL = 1e-5  # float32 Keras vs float32 numpy, see test_reference.py
CLASSIFIER = "lstm-last-bias-2x-softmax"
SEQUENCER = "gru-seq-bias-1x-timedistributed"


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def assert_one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    for needle in needles:
        assert needle in lines[0]


def write_csv(path, rows, header=None):
    with open(path, "w") as fh:
        if header:
            fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(str(v) for v in row) + "\n")


def read_csv(text):
    lines = text.strip().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


@pytest.fixture(scope="session")
def npz_of(keras_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("npz")

    def export(case_id):
        path = out / f"{case_id}.npz"
        if not path.exists():
            result = invoke("export", keras_file(case_id), "--format", "npz", "-o", out)
            assert result.exit_code == 0, result.output + result.stderr
            assert result.stdout.split() == [str(path), str(path) + ".json"]
        return path

    return export


# -- export / info ----------------------------------------------------------------------

def test_export_npz_runs_like_keras(npz_of):
    from edgelstm.runtime import load

    path = npz_of(CLASSIFIER)
    desc = json.loads((path.parent / (path.name + ".json")).read_text())
    assert desc["format"] == "npz" and desc["task"] == "classification"
    assert desc["source_hash"].startswith("sha256:")
    _, stream = zoo.inputs(CLASSIFIER)
    got = load(path).run(stream[0])
    assert np.abs(got - zoo.keras_stream(CLASSIFIER)).max() <= KERAS_TOL


@pytest.mark.parametrize("case_id", [CLASSIFIER, SEQUENCER, "gru_v1-last-nobias-1x-none", "lstm-normalization"])
def test_info_counts_match_keras(case_id, keras_file, npz_of):
    model = zoo.keras_model(case_id)
    for path in (keras_file(case_id), npz_of(case_id)):
        result = invoke("info", path, "--json")
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        # Normalization's mean, variance and count fold into a scale and an offset vector.
        expected = sum(
            2 * layer.mean.shape[-1] if type(layer).__name__ == "Normalization" else layer.count_params()
            for layer in model.layers
        )
        assert data["parameters"] == expected
        assert data["output_size"] == model.output_shape[-1]
        assert data["weight_bytes_float32"] == 4 * data["parameters"]


def test_info_macs_and_state_known_values(keras_file):
    # lstm-last-bias-2x-softmax: LSTM(6) on 3 features, LSTM(4), Dense(3)
    data = json.loads(invoke("info", keras_file(CLASSIFIER), "--json").output)
    assert data["macs_per_step"] == (3 + 6) * 4 * 6 + (6 + 4) * 4 * 4 + 4 * 3
    assert data["state_floats"] == 2 * 6 + 2 * 4
    text = invoke("info", keras_file(CLASSIFIER)).output
    assert "MACs per step" in text and "lstm" in text


# -- run --------------------------------------------------------------------------------

def test_run_streams_rows_like_keras(npz_of, tmp_path):
    _, stream = zoo.inputs(SEQUENCER)
    rows = stream[0, :300]
    write_csv(tmp_path / "in.csv", [[f"{v:.9g}" for v in r] for r in rows], header=["a", "b", "c"])
    result = invoke("run", npz_of(SEQUENCER), "--input", tmp_path / "in.csv", "--output", tmp_path / "out.csv")
    assert result.exit_code == 0, result.stderr
    header, out = read_csv((tmp_path / "out.csv").read_text())
    assert header == ["y0", "y1"]
    got = np.array(out, dtype=np.float32)
    assert got.shape == (300, 2)
    assert np.abs(got - zoo.keras_stream(SEQUENCER)[:300]).max() <= KERAS_TOL


def test_run_without_header_from_stdin(npz_of):
    _, stream = zoo.inputs(SEQUENCER)
    text = "\n".join(",".join(f"{v:.9g}" for v in r) for r in stream[0, :20]) + "\n"
    result = invoke("run", npz_of(SEQUENCER), input=text)
    assert result.exit_code == 0, result.stderr
    _, out = read_csv(result.stdout)
    want, _ = reference.run_sequence(zoo.spec(SEQUENCER), stream[:, :20])
    assert np.array_equal(np.array(out, dtype=np.float32), want[0])  # %.9g round-trips float32


def test_run_stream_column_keeps_streams_apart(npz_of, tmp_path):
    rng = np.random.default_rng(5)
    xs = rng.uniform(-1, 1, (3, 40, 3)).astype(np.float32)
    lengths = [40, 25, 33]  # variable-length sequences, one id each
    rows = []
    for t in range(40):
        for s in range(3):
            if t < lengths[s]:
                rows.append([f"seq{s}"] + [f"{v:.9g}" for v in xs[s, t]])
    write_csv(tmp_path / "in.csv", rows, header=["id", "a", "b", "c"])
    result = invoke("run", npz_of(CLASSIFIER), "-i", tmp_path / "in.csv", "--stream-column", "id")
    assert result.exit_code == 0, result.stderr
    header, out = read_csv(result.stdout)
    assert header[0] == "id" and header[-1] == "class"
    spec = zoo.spec(CLASSIFIER)
    for s in range(3):
        mine = np.array([r[1:-1] for r in out if r[0] == f"seq{s}"], dtype=np.float32)
        want, _ = reference.run_sequence(spec, xs[s : s + 1, : lengths[s]])
        assert np.array_equal(mine, want[0])
        classes = [int(r[-1]) for r in out if r[0] == f"seq{s}"]
        assert classes == list(want[0].argmax(-1))


def test_run_answers_each_stdin_row_before_the_next_arrives(npz_of):
    """Rows arriving one at a time on a pipe get their output at once (no buffering)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgelstm.cli", "run", str(npz_of(SEQUENCER))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("x0,x1,x2\n0.1,0.2,0.3\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "y0,y1"
        first = proc.stdout.readline()
        want, _ = reference.run_sequence(zoo.spec(SEQUENCER), np.array([[[0.1, 0.2, 0.3]]], np.float32))
        assert np.array_equal(np.array(first.strip().split(","), np.float32), want[0, 0])
        proc.stdin.write("0.4,0.5,0.6\n")
        proc.stdin.flush()
        assert len(proc.stdout.readline().split(",")) == 2
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()


def test_run_memory_stays_flat(npz_of, tmp_path):
    """Peak RSS for 60k rows is no larger than for 3k rows (+ a few MB of noise)."""
    line = "0.1,0.2,0.3\n"
    code = ("import resource,sys; from edgelstm.cli import main; "
            "sys.argv=['edgelstm','run',sys.argv[1],'-i',sys.argv[2],"
            "'-o',sys.argv[3]]\ntry: main()\nexcept SystemExit: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    peaks = []
    for n in (3000, 60000):
        src = tmp_path / f"in{n}.csv"
        src.write_text(line * n)
        proc = subprocess.run([sys.executable, "-c", code, str(npz_of(SEQUENCER)), str(src), str(tmp_path / "o.csv")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert sum(1 for _ in open(tmp_path / "o.csv")) == n + 1
        peaks.append(int(proc.stderr.strip().splitlines()[-1]))
    assert peaks[1] - peaks[0] < 8 * 1024, peaks  # KiB


# -- errors -----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    assert_one_line_error(invoke("info", tmp_path / "nope.keras"), "no such file")
    assert_one_line_error(invoke("export", tmp_path / "nope.keras", "-o", tmp_path), "no such file")
    assert_one_line_error(invoke("run", tmp_path / "nope.npz", input="1,2,3\n"), "no such file")


def test_file_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(invoke("export", tmp_path / "notes.txt", "-o", tmp_path), "not a model")
    (tmp_path / "fake.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(invoke("info", tmp_path / "fake.npz"), "not a valid edgelstm .npz")
    (tmp_path / "fake.keras").write_text("definitely not a zip")
    assert_one_line_error(invoke("info", tmp_path / "fake.keras"), "not a valid .keras")


def test_corrupted_keras_file(keras_file, tmp_path):
    good = keras_file(CLASSIFIER).read_bytes()
    (tmp_path / "truncated.keras").write_bytes(good[: len(good) // 2])
    assert_one_line_error(invoke("export", tmp_path / "truncated.keras", "-o", tmp_path), "truncated.keras")
    # A valid zip whose weights were damaged
    with zipfile.ZipFile(keras_file(CLASSIFIER)) as src, zipfile.ZipFile(tmp_path / "damaged.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith(".h5"):
                data = data[:100] + b"\0" * (len(data) - 100)
            dst.writestr(item, data)
    assert_one_line_error(invoke("info", tmp_path / "damaged.keras"), "could not load the Keras model")


def _save_unsupported(tmp_path, name, layers):
    import keras

    model = keras.Sequential([keras.Input((None, 3))] + layers)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("name", ["conv1d", "bidirectional", "masking", "go_backwards"])
def test_unsupported_layer_is_named(name, tmp_path):
    import keras

    L = keras.layers
    layers = {
        "conv1d": [L.Conv1D(4, 3, padding="causal"), L.LSTM(4)],
        "bidirectional": [L.Bidirectional(L.LSTM(4))],
        "masking": [L.Masking(), L.LSTM(4)],
        "go_backwards": [L.GRU(4, go_backwards=True)],
    }[name]
    path = _save_unsupported(tmp_path, name, layers)
    result = invoke("export", path, "-o", tmp_path)
    assert_one_line_error(result, "not supported" if name != "go_backwards" else "backwards")
    assert layers[0].name in result.stderr


def test_branching_model_is_refused(tmp_path):
    import keras

    inp = keras.Input((None, 3))
    a = keras.layers.LSTM(4)(inp)
    b = keras.layers.GRU(4)(inp)
    model = keras.Model(inp, keras.layers.Concatenate()([a, b]))
    model.save(tmp_path / "branch.keras")
    assert_one_line_error(invoke("info", tmp_path / "branch.keras"))


def test_functional_chain_and_h5_are_supported(tmp_path):
    import keras

    inp = keras.Input((None, 3))
    x = keras.layers.GRU(5, return_sequences=True, reset_after=False)(inp)
    x = keras.layers.SimpleRNN(4)(x)
    out = keras.layers.Dense(2, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    xs = np.random.default_rng(0).uniform(-1, 1, (2, 30, 3)).astype(np.float32)
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"f{suffix}")
        assert invoke("export", tmp_path / f"f{suffix}", "--name", f"f{suffix[1:]}", "-o", tmp_path).exit_code == 0
        from edgelstm.runtime import load

        got = load(tmp_path / f"f{suffix[1:]}.npz", streams=2).run(xs)[:, -1]
        assert np.abs(got - np.asarray(model(xs))).max() <= KERAS_TOL


def test_bad_csv_row_width(npz_of, tmp_path):
    write_csv(tmp_path / "in.csv", [[0.1, 0.2, 0.3], [0.1, 0.2], [0.3, 0.2, 0.1]], header=["a", "b", "c"])
    result = invoke("run", npz_of(SEQUENCER), "-i", tmp_path / "in.csv")
    assert_one_line_error(result, "input line 3", "2 values", "takes 3")
    # The good row before it was answered; nothing after it.
    assert len(result.stdout.strip().splitlines()) == 2


def test_stream_column_needs_header(npz_of):
    result = invoke("run", npz_of(SEQUENCER), "--stream-column", "id", input="1,2,3\n")
    assert_one_line_error(result, "--stream-column")


# -- train / demo ---------------------------------------------------------------------------

def test_train_toy_report_matches_the_saved_model(tmp_path):
    result = invoke("train", "--dataset", "toy", "--cell", "gru", "--units", "8", "--epochs", "3", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    model_path = tmp_path / "toy_gru.keras"
    report = json.loads((tmp_path / "toy_gru.report.json").read_text())
    assert str(model_path) in result.output.split()
    import keras

    from edgelstm import datasets

    model = keras.saving.load_model(model_path, safe_mode=True)
    data = datasets.load("toy")
    pred = np.asarray(model(data.x_test))
    rmse = float(np.sqrt(np.mean((pred - data.y_test) ** 2)))
    assert report["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    assert [type(layer).__name__ for layer in model.layers] == ["Normalization", "GRU", "Dense", "Normalization"]
    with np.load(tmp_path / "toy_gru.calibration.npz", allow_pickle=False) as cal:
        assert np.array_equal(cal["x_test"], data.x_test)


def test_train_csv_classification(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for t in range(300):
        label = "up" if (t // 30) % 2 else "down"
        rows.append([f"{(1 if label == 'up' else -1) + rng.normal(0, 0.3):.4f}", f"{rng.normal():.4f}", label])
    write_csv(tmp_path / "d.csv", rows, header=["a", "b", "state"])
    result = invoke("train", "--csv", tmp_path / "d.csv", "--target", "state", "--task", "classification",
                    "--window", "8", "--epochs", "3", "--units", "4", "-o", tmp_path / "m.keras")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert report["class_names"] == ["down", "up"] and report["task"] == "classification"


def test_train_needs_a_data_source():
    result = invoke("train")
    assert result.exit_code == 2 and "--dataset" in result.stderr


@pytest.fixture(scope="session")
def demo_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "edgelstm.cli", "demo", "-o", str(out), "--json", str(out / "t.json")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "t.json").read_text()), proc.stdout, out


def test_demo_table_covers_every_format(demo_rows):
    from edgelstm.demo import available_targets

    rows, table, _ = demo_rows
    assert [(r["format"], r["quantize"]) for r in rows[1:]] == available_targets()
    assert not [r for r in rows if "error" in r]
    for r in rows:
        assert r["format"] in table
    float_rows = [r for r in rows[1:] if r["quantize"] == "float32"]
    assert {r["format"] for r in float_rows} >= {"npz"}
    for r in float_rows:
        assert r["max_abs_vs_keras"] <= KERAS_TOL
        assert r["accuracy"] == rows[0]["accuracy"]


def test_demo_accuracy_is_real(demo_rows):
    """The demo's Keras accuracy is what the saved model scores on the held-out split."""
    import keras

    from edgelstm import datasets

    rows, _, out = demo_rows
    model = keras.saving.load_model(out / "basicmotions_lstm.keras", safe_mode=True)
    data = datasets.load("basicmotions")
    acc = float(np.mean(np.asarray(model.predict(data.x_test, verbose=0)).argmax(-1) == data.y_test))
    assert rows[0]["accuracy"] == acc
    assert acc >= 0.6  # 4 balanced classes: chance is 0.25


# -- user errors found in review ----------------------------------------------------------

def test_input_that_is_not_utf8(npz_of, tmp_path):
    (tmp_path / "in.csv").write_bytes(b"0.1,0.2,\xff\xfe\n")
    assert_one_line_error(invoke("run", npz_of(SEQUENCER), "-i", tmp_path / "in.csv"), "not UTF-8")


def test_export_into_a_file_instead_of_a_directory(npz_of, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(invoke("export", npz_of(SEQUENCER), "-o", tmp_path / "afile" / "sub"), "afile")


def test_first_row_mixing_numbers_and_text_is_refused_not_dropped(npz_of):
    result = invoke("run", npz_of(SEQUENCER), input="1,x,3\n4,5,6\n")
    assert_one_line_error(result, "input line 1", "'x' is not a number")


def test_train_csv_with_a_short_row(tmp_path):
    rows = [[f"{i * 0.1:.2f}", f"{i:.1f}"] for i in range(60)]
    rows[30] = ["0.5"]
    write_csv(tmp_path / "d.csv", rows, header=["a", "y"])
    result = invoke("train", "--csv", tmp_path / "d.csv", "--target", "y", "--window", "4", "--epochs", "1",
                    "-o", tmp_path)
    assert_one_line_error(result, "d.csv")


def test_train_csv_naive_baseline_reads_the_target_column(tmp_path):
    """With the target in the last column, the last-value baseline must use that column."""
    rng = np.random.default_rng(0)
    target = np.cumsum(rng.normal(size=80)).round(3)
    rows = [[f"{rng.normal():.3f}", f"{v}"] for v in target]
    write_csv(tmp_path / "d.csv", rows, header=["noise", "level"])
    result = invoke("train", "--csv", tmp_path / "d.csv", "--target", "level", "--window", "5", "--epochs", "1",
                    "--units", "4", "-o", tmp_path / "m.keras")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "m.report.json").read_text())["metrics"]
    with np.load(tmp_path / "m.calibration.npz", allow_pickle=False) as cal:
        x_test, y_test = cal["x_test"], cal["y_test"]
    want = float(np.sqrt(np.mean((x_test[:, -1, 1:2] - y_test) ** 2)))
    assert metrics["naive_last_value_rmse"] == pytest.approx(want, rel=1e-6)


def test_binary_sigmoid_classifier_agreement_and_accuracy():
    from edgelstm.converters.accuracy import summarize
    from edgelstm.core.metrics import predicted_class

    spec = zoo.spec(CLASSIFIER)
    spec_binary = type(spec)(input_size=spec.input_size, layers=spec.layers[:-1] + [
        type(spec.layers[-1])(kind="dense", units=1, weights={"kernel": spec.layers[-1].weights["kernel"][:, :1],
                                                              "bias": spec.layers[-1].weights["bias"][:1]},
                              activation="sigmoid")], task="classification")
    want = np.array([[[0.2], [0.9]], [[0.8], [0.3]]], np.float32)  # 2 sequences x 2 steps
    got = np.array([[[0.1], [0.7]], [[0.6], [0.6]]], np.float32)   # second flips at the last step
    report = summarize(spec_binary, want, got, targets=np.array([1, 0]))
    assert list(predicted_class(want[:, -1])) == [1, 0]
    assert report["agreement"] == 0.5
    assert report["accuracy_reference"] == 1.0 and report["accuracy"] == 0.5
