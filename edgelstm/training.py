"""Train a small LSTM / GRU / SimpleRNN on a bundled dataset or a CSV.

Writes ``<name>.keras`` plus, beside it, ``<name>.report.json`` (task, metrics on
held-out data, classes, data provenance) and ``<name>.calibration.npz`` (training
windows ``x``/``y`` and held-out ``x_test``/``y_test``): the data later used to calibrate int8 exports and to check
accuracy, so an export of this model never has to fall back to synthetic data.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgelstm import datasets, noisy_state, quant_aware
from edgelstm.core.metrics import class_accuracy  # not argmax: a sigmoid head has one column
from edgelstm.core.errors import UserError, require_file

#: The fine-tuning phase of ``quant_aware_epochs`` runs at this fraction of the learning
#: rate: rounding every tensor from the first epoch at the benchmark's 1e-2 diverged
#: (PickupGesture LSTM(32): loss 1.34 at epoch 15, NaN from epoch 36), as did rounding
#: from epoch 50 of 100 on the same cosine schedule (ACSF1 LSTM: NaN at epoch 65).
QUANT_AWARE_LR = 0.1
CELLS = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN", "rnn": "SimpleRNN"}


@dataclass
class TrainConfig:
    cell: str = "lstm"
    units: int = 32
    layers: int = 1
    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 3e-3
    seed: int = 0
    activation: str = "tanh"
    #: Fraction of the recurrent state dropped per step while training (Keras
    #: ``recurrent_dropout``): a model trained against perturbed states keeps its
    #: answer when quantization perturbs them (see docs/quantization.md).
    recurrent_dropout: float = 0.0
    #: "constant", or "cosine": the learning rate decays to 0 over the run. Cosine at
    #: 1e-2 (batch 16, 150 epochs) lifted PickupGesture LSTM(32) from 38.7 % (30 epochs,
    #: 3e-3 constant) to 44-50 % and ACSF1 GRU(32) from 27 % to 50 % (docs/quantization.md).
    lr_schedule: str = "constant"
    #: K > 0: train with Gaussian noise of K int8 steps (K x running max|state| / 127)
    #: added to every carried state after every step (edgelstm/noisy_state.py); the
    #: saved model is the plain layer with the trained weights. 0: off.
    state_noise: float = 0.0
    #: LSTM only, > 0: a loss term of this weight on every step's cell state beyond
    #: |c| = 4 (``noisy_state.CELL_STATE_BOUND``), so int8 steps of ``c`` stay fine. 0: off.
    cell_state_penalty: float = 0.0
    #: N > 0: after the ``epochs`` of float training, N epochs of quantization-aware
    #: fine-tuning at a tenth of the learning rate, the cell computing every step with each
    #: tensor of the int8 step graph rounded to 8 bits (edgelstm/quant_aware.py); the saved
    #: model is the plain layer with the tuned weights. 0: off.
    quant_aware_epochs: int = 0


def build_model(data: datasets.Dataset, cfg: TrainConfig, quant_aware_cell: bool = False):
    """The compiled Keras model of ``cfg``; ``quant_aware_cell``: with the quantization-aware
    cell (the fine-tuning phase of ``quant_aware_epochs``)."""
    from edgelstm.keras_import import import_keras

    keras = import_keras()
    if cfg.cell not in CELLS:
        raise UserError(f"unknown cell {cfg.cell!r}; choose from lstm, gru, simple_rnn")
    if cfg.units < 1 or cfg.layers < 1:
        raise UserError("--units and --layers must be at least 1")
    keras.utils.set_random_seed(cfg.seed)
    L = keras.layers
    norm = L.Normalization(axis=-1, name="input_scaling")
    norm.adapt(data.x_train.reshape(-1, data.features))
    layers = [keras.Input((None, data.features), name="x"), norm]
    for k in range(cfg.layers):
        layers.append(recurrent_layer(keras, cfg, quant_aware_cell, return_sequences=k < cfg.layers - 1,
                                      name=f"{cfg.cell}_{k}"))
    if data.task == "classification":
        layers.append(L.Dense(len(data.class_names), activation="softmax", name="classes"))
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        outputs = data.y_train.shape[-1]
        layers.append(L.Dense(outputs, name="forecast"))
        # Predict in standardised units, then map back: the artifact carries the scaling.
        layers.append(L.Normalization(axis=-1, invert=True, mean=data.y_train.mean(0),
                                      variance=data.y_train.var(0), name="output_scaling"))
        loss, metrics = "mse", []
    model = keras.Sequential(layers, name=f"{data.name}_{cfg.cell}")
    # Clipping keeps 100-step backpropagation through time from blowing up (LSTM on
    # BasicMotions: 57% held-out accuracy without, 100% with, same seed).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(keras, data, cfg), clipnorm=1.0),
                  loss=loss, metrics=metrics)
    return model


def recurrent_layer(keras, cfg: TrainConfig, quant_aware_cell: bool = False, **layer_args):
    """The standard Keras layer of ``cfg.cell``, or with ``cfg.state_noise`` the same cell
    trained against state noise inside ``keras.layers.RNN`` (same weights)."""
    cell_args = {"units": cfg.units, "activation": cfg.activation, "recurrent_dropout": cfg.recurrent_dropout}
    for name in ("state_noise", "cell_state_penalty"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value >= 0):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
    if cfg.cell_state_penalty and CELLS.get(cfg.cell) != "LSTM":
        raise UserError("--cell-state-penalty applies to LSTM only (GRU and SimpleRNN states are bounded by tanh)")
    if cfg.quant_aware_epochs < 0:
        raise UserError(f"--quant-aware-epochs must be >= 0, got {cfg.quant_aware_epochs}")
    if cfg.quant_aware_epochs and (cfg.state_noise or cfg.cell_state_penalty or cfg.recurrent_dropout):
        raise UserError("--quant-aware-epochs does not combine with --state-noise, --cell-state-penalty "
                        "or --recurrent-dropout")
    if quant_aware_cell:
        return keras.layers.RNN(quant_aware.quant_aware_cell(keras, CELLS[cfg.cell], **cell_args), **layer_args)
    if cfg.state_noise == 0 and cfg.cell_state_penalty == 0:
        return getattr(keras.layers, CELLS[cfg.cell])(**cell_args, **layer_args)
    cell = noisy_state.noisy_cell(keras, CELLS[cfg.cell], cfg.state_noise, cfg.cell_state_penalty, **cell_args)
    return keras.layers.RNN(cell, **layer_args)


def learning_rate(keras, data: datasets.Dataset, cfg: TrainConfig):
    """The optimizer's learning rate: a constant, or a cosine decay over every batch of the run."""
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule != "cosine":
        raise UserError(f"unknown learning-rate schedule {cfg.lr_schedule!r}; choose from constant, cosine")
    batches = cfg.epochs * -(-len(data.x_train) // cfg.batch_size)
    return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, max(1, batches))


def _epoch_callback(keras, progress, seconds: list):
    """Times every epoch (into ``seconds``) and reports it to ``progress``, if given."""
    import time

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)
            if progress:
                # the loss as the bar's current item: one figure per epoch says training moves
                progress(1, f"loss {logs['loss']:.4g}" if logs and "loss" in logs else None)

    return Epochs()


def train(data: datasets.Dataset, cfg: TrainConfig, out: str | Path, progress=None) -> dict:
    """Train, evaluate on the held-out split, save model + report + calibration data."""
    from edgelstm.keras_import import import_keras

    keras = import_keras()
    out = Path(out)
    if out.suffix != ".keras":
        out = out / f"{data.name}_{cfg.cell}.keras"
    out.parent.mkdir(parents=True, exist_ok=True)
    model = build_model(data, cfg)
    y_train = data.y_train if data.task == "classification" else data.y_train.astype(np.float32)
    epoch_seconds: list[float] = []
    callbacks = [_epoch_callback(keras, progress, epoch_seconds)]
    history = model.fit(data.x_train, y_train, epochs=cfg.epochs, batch_size=cfg.batch_size,
                        verbose=0, shuffle=True, callbacks=callbacks)
    losses = _finite_losses(history, cfg.epochs)
    if cfg.state_noise > 0 or cfg.cell_state_penalty > 0:  # save what export reads: plain layers, trained weights
        model = noisy_state.standard_model(keras, model, lambda: build_model(data, plain_config(cfg)))
    if cfg.quant_aware_epochs:
        model, tuned = _fine_tune_quant_aware(keras, data, cfg, model, y_train, callbacks)
        losses += tuned
    pred = np.asarray(model.predict(data.x_test, verbose=0))
    report = {
        "model": out.name,
        "dataset": data.name,
        "description": data.description,
        "task": data.task,
        "class_names": data.class_names,
        "feature_names": data.feature_names,
        "seq_len": int(data.seq_len),
        "config": cfg.__dict__,
        "train_samples": int(len(data.x_train)),
        "test_samples": int(len(data.x_test)),
        "final_train_loss": losses[-1],
        "loss_history": losses,
        "epoch_seconds": epoch_seconds,
        "metrics": evaluate(data, pred),
    }
    model.save(out)
    out.with_suffix(".report.json").write_text(json.dumps(report, indent=2) + "\n")
    # Calibrate on training windows; keep the held-out ones apart for honest checks.
    np.savez(out.with_suffix(".calibration.npz"), x=data.x_train.astype(np.float32),
             y=np.asarray(data.y_train), x_test=data.x_test.astype(np.float32), y_test=np.asarray(data.y_test))
    report["paths"] = [str(out), str(out.with_suffix(".report.json")), str(out.with_suffix(".calibration.npz"))]
    return report


def plain_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every training-only cell variant off: the architecture that is saved."""
    return replace(cfg, state_noise=0.0, cell_state_penalty=0.0)


def _finite_losses(history, epochs: int, phase: str = "") -> list[float]:
    """The epochs' losses; a user error (nothing is saved) once one is NaN or infinite."""
    losses = [float(v) for v in history.history["loss"]]
    if not all(math.isfinite(v) for v in losses):
        first = next(k for k, v in enumerate(losses) if not math.isfinite(v))
        raise UserError(f"training diverged: the loss is {losses[first]} from epoch {first + 1} of "
                        f"{epochs}{phase}; try a lower --lr")
    return losses


def _fine_tune_quant_aware(keras, data: datasets.Dataset, cfg: TrainConfig, trained, y_train, callbacks):
    """(plain model, losses): ``trained``'s weights fine-tuned for ``cfg.quant_aware_epochs``
    with the int8 step graph's rounding in the loop, at ``QUANT_AWARE_LR`` of the rate."""
    tune = replace(cfg, epochs=cfg.quant_aware_epochs, learning_rate=cfg.learning_rate * QUANT_AWARE_LR)
    model = build_model(data, tune, quant_aware_cell=True)
    noisy_state.copy_weights(trained, model)
    quant_aware.calibrate(model, data.x_train, cfg.batch_size)
    history = model.fit(data.x_train, y_train, epochs=tune.epochs, batch_size=cfg.batch_size,
                        verbose=0, shuffle=True, callbacks=callbacks)
    losses = _finite_losses(history, tune.epochs, " of the quantization-aware fine-tuning")
    return noisy_state.standard_model(keras, model, lambda: build_model(data, plain_config(cfg))), losses


def evaluate(data: datasets.Dataset, pred: np.ndarray) -> dict:
    if data.task == "classification":
        return {"accuracy": class_accuracy(pred, data.y_test),
                "majority_baseline": float(np.bincount(data.y_test).max() / len(data.y_test))}
    rmse = float(np.sqrt(np.mean((pred - data.y_test) ** 2)))
    # Naive forecasts: the training mean, and (when the target is among the inputs) its last value.
    out = {"rmse": rmse, "train_mean_rmse": float(np.sqrt(np.mean((data.y_train.mean(0) - data.y_test) ** 2)))}
    if data.target_index is not None:
        last = data.x_test[:, -1, data.target_index:data.target_index + 1]
        out["naive_last_value_rmse"] = float(np.sqrt(np.mean((last - data.y_test) ** 2)))
    return out


def dataset_from_csv(path: str | Path, target: str, window: int, task: str,
                     features: list[str] | None = None, test_fraction: float = 0.2) -> datasets.Dataset:
    """Windows of ``window`` rows from a CSV (one row per timestep, header required).

    regression: predict ``target`` at the row after each window (forecasting);
    classification: the label of a window is ``target`` at its last row.
    """
    path = require_file(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or target not in reader.fieldnames:
            raise UserError(f"{path}: no column {target!r} (columns: {', '.join(reader.fieldnames or [])})")
        rows = list(reader)
    if features is None:  # in the CSV's order: `edgelstm run` feeds rows as they are
        features = [c for c in reader.fieldnames if c != target or task == "regression"]
    try:
        x = np.array([[float(r[c]) for c in features] for r in rows], np.float32)
    except (KeyError, TypeError, ValueError) as exc:  # TypeError: a short row leaves None cells
        raise UserError(f"{path}: a missing or non-numeric feature value ({exc})") from None
    labels = [r[target] for r in rows]
    if len(rows) <= window + 4:
        raise UserError(f"{path}: {len(rows)} rows is too few for windows of {window}")
    if task == "classification":
        names = sorted(set(labels))
        idx = np.array([names.index(v) for v in labels])
        xs = np.stack([x[i - window + 1:i + 1] for i in range(window - 1, len(x))])
        ys = idx[window - 1:]
        class_names = names
    else:
        try:
            t = np.array([float(v) for v in labels], np.float32)
        except ValueError as exc:
            raise UserError(f"{path}: non-numeric target ({exc})") from None
        xs = np.stack([x[i:i + window] for i in range(len(x) - window)])
        ys = t[window:, None]
        class_names = None
    n_test = max(1, int(len(xs) * test_fraction))
    return datasets.Dataset(
        name=path.stem, task=task, target_index=features.index(target) if target in features else None,
        x_train=xs[:-n_test], y_train=ys[:-n_test],
        x_test=xs[-n_test:], y_test=ys[-n_test:], class_names=class_names,
        feature_names=list(features), description=f"{path.name}: target {target}, window {window}",
    )
