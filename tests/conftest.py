import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))  # tests/zoo.py, shared by every test module

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory):
    """Save a zoo case as a .keras file (once per session per case); returns its path."""
    root = tmp_path_factory.mktemp("keras_models")
    cache = {}

    def save(case_id: str, suffix: str = ".keras"):
        import zoo

        key = (case_id, suffix)
        if key not in cache:
            path = root / f"{case_id}{suffix}"
            zoo.keras_model(case_id).save(path)
            cache[key] = path
        return cache[key]

    return save


@pytest.fixture(scope="session")
def basicmotions_lstm(tmp_path_factory):
    """(dataset, ModelSpec) of a small LSTM trained on the bundled smartwatch data (the
    quantized C exports are held against it)."""
    from edgelstm import datasets
    from edgelstm.keras_import import spec_from_path
    from edgelstm.training import TrainConfig, train

    data = datasets.load("basicmotions")
    report = train(data, TrainConfig(cell="lstm", units=16, epochs=8), tmp_path_factory.mktemp("basicmotions"))
    return data, spec_from_path(report["paths"][0])


# -- the seed's toy model (tests/test_guards.py, tests/test_rough_edges.py) ------------------
SEED_X = np.array([[1, 2, 3], [2, 3, 4], [3, 4, 5]], np.float32)[..., None]
SEED_Y = np.array([4, 5, 6], np.float32)
QUERY = np.array([[4], [5], [6]], np.float32)  # one step beyond the training windows


def invoke_cli(*args, input=None):
    from click.testing import CliRunner

    from edgelstm.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory):
    """The seed model as toy.keras (no companions: nothing says what data it saw)."""
    import keras

    root = tmp_path_factory.mktemp("seed_toy")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3, 1)), keras.layers.LSTM(50, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(SEED_X, SEED_Y, epochs=200, verbose=0)
    model.save(root / "toy.keras")
    np.save(root / "keras_query.npy", model.predict(QUERY[None], verbose=0)[0])
    # A long stream of the training values: the unbounded relu state grows until float32 overflows.
    (root / "seq.csv").write_text("".join(f"{(i % 5) + 1}\n" for i in range(2000)))
    np.savez(root / "train.npz", x=SEED_X, y=SEED_Y)
    return root


@pytest.fixture(scope="session")
def toy_npz(toy_dir):
    out = toy_dir / "npz"
    result = invoke_cli("export", toy_dir / "toy.keras", "--format", "npz", "-o", out)
    assert result.exit_code == 0, result.output + result.stderr
    return out / "toy.npz"


