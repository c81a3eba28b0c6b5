"""int8 keeps its promise on a model that generalises: JapaneseVowels, the bundled
9-speaker problem (12 LPC features, 7-29 frames, 370 held-out utterances) of the same
shape as the one where int8 TFLite once agreed with float on only 95.1 % of the cases.

One model per cell, trained with the quantization benchmark's recipe (1e-2 cosine, batch
16, 60 epochs, 32 units, seed 0: 10-20 s each here), exported as int8 and int16x8 TFLite
step graphs through ``converters.export`` with the gate a user would put in CI. The
check on write streams all 370 held-out utterances through LiteRT from a fresh state and
compares each final class with the float numpy reference (``test_reference.py`` checks
that reference against Keras).
"""

from __future__ import annotations

import pytest

from edgelstm import converters, datasets
from edgelstm.core.artifact import read_sidecar
from edgelstm.keras_import import spec_from_path
from edgelstm.training import TrainConfig, train

CELLS = ("lstm", "gru", "simple_rnn")
#: (min class agreement with float, max accuracy loss) per mode. int8: the targets of
#: README "Quantization accuracy" (98 %, 1 point). int16x8's target there is 99.5 % as a
#: mean over three seeds (met on this dataset: 99.6-100 % per cell); a single seed's 370
#: cases flipped 0-3 near-ties in every mode, dynamic included (int8 LSTM seed 1: 367 of
#: 370; int16x8 GRU seed 1 before the input was centred: 367), so one seed is held to
#: 99 % (at most 3 flips), not to the mean's bar.
BARS = {"int8": (0.98, 0.01), "int16x8": (0.99, 0.01)}


@pytest.fixture(scope="session")
def vowels():
    return datasets.load("japanesevowels")


@pytest.fixture(scope="session")
def vowel_models(vowels, tmp_path_factory):
    """{cell: (ModelSpec, Keras held-out accuracy)}."""
    out = tmp_path_factory.mktemp("vowels")
    models = {}
    for cell in CELLS:
        cfg = TrainConfig(cell=cell, units=32, epochs=60, seed=0, learning_rate=1e-2, batch_size=16,
                          lr_schedule="cosine")
        report = train(vowels, cfg, out / cell)
        models[cell] = spec_from_path(report["paths"][0]), report["metrics"]["accuracy"]
    return models


@pytest.mark.parametrize("quantize", sorted(BARS))
@pytest.mark.parametrize("cell", CELLS)
def test_quantized_export_keeps_the_float_models_classes(vowels, vowel_models, cell, quantize, tmp_path):
    spec, keras_accuracy = vowel_models[cell]
    assert keras_accuracy >= 0.90  # the premise: a model that generalises (95-97 % measured)
    min_agreement, max_loss = BARS[quantize]
    options = converters.ExportOptions(quantize=quantize, calibration=vowels.x_train, heldout=vowels.x_test,
                                       heldout_targets=vowels.y_test, min_agreement=min_agreement,
                                       basename=f"{cell}.{quantize}")
    path = converters.export(spec, "tflite", tmp_path, options)[0]  # the gate raises on a miss
    ver = read_sidecar(path)["verification"]
    assert ver["sequences"] == len(vowels.x_test) == 370 and ver["synthetic_data"] is False
    assert ver["agreement"] >= min_agreement, ver
    assert ver["accuracy_reference"] - ver["accuracy"] <= max_loss, ver
    assert abs(ver["accuracy_reference"] - keras_accuracy) <= 1 / 370  # the reference is the Keras model
