"""Regenerate the bundled firmware models (run once; the .npz files are committed).

    python firmware_examples/models/make_models.py            # both
    python firmware_examples/models/make_models.py lstm8x32   # no TensorFlow needed

- ``lstm8x32.npz``: one LSTM layer, 8 inputs -> 32 units (the output is h, 32 values),
  5120 multiply-accumulates per step. Weights drawn like Keras' default initializers
  (Glorot-uniform kernel, orthogonal recurrent kernel, zero bias with the forget gate's
  bias at 1) from numpy seed 0. Untrained: it measures cost and numerics, not accuracy.
- ``basicmotions.npz``: ``edgelstm train --dataset basicmotions --units 32 --epochs 40
  --seed 0`` (input scaling -> LSTM(32) -> Dense(4, softmax) on the bundled UEA
  BasicMotions smartwatch data: 6 channels, 100 steps at 10 Hz, 4 activities), imported
  into a spec archive. Needs the host extra (TensorFlow).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def lstm8x32() -> Path:
    from edgelstm.core.spec import LayerSpec, ModelSpec

    inputs, units = 8, 32
    rng = np.random.default_rng(0)
    limit = np.sqrt(6.0 / (inputs + 4 * units))
    kernel = rng.uniform(-limit, limit, (inputs, 4 * units))
    q, r = np.linalg.qr(rng.standard_normal((4 * units, units)))
    recurrent = (q * np.sign(np.diag(r))).T  # (units, 4 units), orthonormal rows
    bias = np.zeros(4 * units)
    bias[units:2 * units] = 1.0  # unit_forget_bias
    layer = LayerSpec("lstm", units, {"kernel": kernel.astype(np.float32),
                                      "recurrent_kernel": recurrent.astype(np.float32),
                                      "bias": bias.astype(np.float32)},
                      activation="tanh", recurrent_activation="sigmoid", return_sequences=True, name="lstm")
    spec = ModelSpec(inputs, [layer], name="lstm8x32", task="sequence")
    return spec.save_npz(HERE / "lstm8x32.npz")


def basicmotions() -> Path:
    from edgelstm import datasets, training
    from edgelstm.keras_import import load_model_spec

    with tempfile.TemporaryDirectory() as tmp:
        cfg = training.TrainConfig(units=32, epochs=40, seed=0)
        report = training.train(datasets.load("basicmotions"), cfg, Path(tmp) / "basicmotions.keras")
        print("held-out metrics:", report["metrics"])
        spec = load_model_spec(Path(tmp) / "basicmotions.keras")
    spec.name = "basicmotions"
    return spec.save_npz(HERE / "basicmotions.npz")


MODELS = {"lstm8x32": lstm8x32, "basicmotions": basicmotions}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(MODELS):
        print(MODELS[name]())
