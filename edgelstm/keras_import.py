"""Keras model (.keras / .h5 / keras.Model) -> ModelSpec.

Reads each layer's config and weights once; one small handler per Keras layer class,
found through ``HANDLERS``. Needs TensorFlow/Keras, imported here and only here.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from edgelstm.core.errors import MissingExtraError, UserError, one_line, require_file
from edgelstm.core.spec import (
    DENSE_ACTIVATIONS,
    RECURRENT_ACTIVATIONS,
    LayerSpec,
    ModelSpec,
    file_sha256,
)

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
SUPPORTED = (
    "LSTM, GRU, SimpleRNN, Dense, TimeDistributed(Dense), Dropout-family layers, "
    "Normalization, Rescaling, Activation (after a linear Dense)"
)
#: Keras layers that do nothing at inference time.
NO_OPS = {
    "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
    "ActivityRegularization", "InputLayer",
}


def import_keras():
    """Import keras quietly, or tell the user which extra provides it."""
    from edgelstm.runtime.native_stderr import quiet_native_stderr

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet_native_stderr():  # TensorFlow's start-up lines on fd 2 (see native_stderr)
            import keras
    except ImportError:
        raise MissingExtraError("TensorFlow/Keras", "host") from None
    return keras


def load_keras_model(path: str | Path):
    """Load a .keras or .h5 model with safe_mode (no arbitrary code from the file)."""
    path = require_file(path)
    suffix = path.suffix.lower()
    if suffix not in KERAS_SUFFIXES:
        raise UserError(f"{path}: not a Keras model file (expected .keras or .h5)")
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a valid .keras file (it is not a zip archive; truncated or corrupted?)")
    if suffix != ".keras":
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89HDF\r\n\x1a\n":
                raise UserError(f"{path}: not a valid .h5 file (bad HDF5 signature)")
    keras = import_keras()
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for broken or foreign files
        raise UserError(f"{path}: could not load the Keras model ({one_line(exc)})") from None


def spec_from_path(path: str | Path) -> ModelSpec:
    model = load_keras_model(path)
    spec = spec_from_keras(model)
    spec.source_hash = "sha256:" + file_sha256(path)
    return spec


def load_model_spec(path: str | Path) -> ModelSpec:
    """A ModelSpec from a Keras model (.keras/.h5, with what ``edgelstm train`` recorded
    beside it) or an edgelstm ``.npz`` spec archive (no TensorFlow needed)."""
    path = require_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return ModelSpec.load_npz(path)
    if suffix in KERAS_SUFFIXES:
        from edgelstm.calibration import apply_report, read_report

        return apply_report(spec_from_path(path), read_report(path))
    raise UserError(f"{path}: not a model (expected .keras, .h5 or an edgelstm .npz)")


def spec_from_keras(model) -> ModelSpec:
    """The ModelSpec of a Sequential or linear Functional keras.Model."""
    layers = _linear_layers(model)
    shape = _single_shape(model.input_shape, "input")
    if len(shape) != 3:
        raise UserError(
            f"model input has shape {tuple(shape)}: edgelstm needs sequences (batch, time, features)"
        )
    specs: list[LayerSpec] = []
    for layer in layers:
        cls = type(layer).__name__
        if cls in NO_OPS:
            continue
        handler = HANDLERS.get(cls)
        if handler is None:
            raise UserError(f"layer {layer.name!r} ({cls}) is not supported; edgelstm handles {SUPPORTED}")
        handler(layer, specs)
    task = "regression"
    if specs and specs[-1].kind == "dense" and specs[-1].activation in ("softmax", "sigmoid"):
        task = "classification"
    spec = ModelSpec(
        input_size=int(shape[-1]),
        layers=specs,
        name=model.name,
        task=task,
        seq_len=int(shape[1]) if shape[1] is not None else None,
    )
    if not spec.recurrent_layers:
        raise UserError("model has no LSTM, GRU or SimpleRNN layer")
    spec.source_hash = "weights-sha256:" + spec.weights_hash()
    return spec


# -- graph walking ------------------------------------------------------------------

def _single_shape(shape, what):
    if isinstance(shape, list):
        if len(shape) != 1:
            raise UserError(f"model has {len(shape)} {what}s; edgelstm needs exactly one")
        shape = shape[0]
    return tuple(shape)


def _linear_layers(model) -> list:
    """The layers of a Sequential or chain-shaped Functional model, in order."""
    keras = import_keras()
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(
            f"model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "edgelstm needs a single chain from one input to one output"
        )
    chain = []
    tensor = model.outputs[0]
    while True:
        op = tensor._keras_history.operation
        if type(op).__name__ == "InputLayer":
            break
        inputs = op._inbound_nodes[0].input_tensors if op._inbound_nodes else []
        if len(op._inbound_nodes) != 1 or len(inputs) != 1:
            raise UserError(
                f"layer {op.name!r} ({type(op).__name__}) is part of a branching graph; "
                "edgelstm needs a single chain of layers"
            )
        chain.append(op)
        tensor = inputs[0]
    return chain[::-1]


# -- one handler per Keras layer class ------------------------------------------------

def _activation_name(fn, allowed, layer, what="activation") -> str:
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
    if name not in allowed:
        raise UserError(
            f"layer {layer.name!r} ({type(layer).__name__}): {what} {name!r} is not supported "
            f"(supported: {', '.join(allowed)})"
        )
    return name


def _weights(layer, names) -> dict[str, np.ndarray]:
    values = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    if len(values) != len(names):
        raise UserError(f"layer {layer.name!r}: expected {len(names)} weight arrays, found {len(values)}")
    return dict(zip(names, values))


def _recurrent(kind):
    def handler(layer, specs):
        cfg = layer.get_config()
        for flag, why in (("go_backwards", "runs backwards in time"), ("return_state", "returns its state")):
            if cfg.get(flag):
                raise UserError(f"layer {layer.name!r} ({type(layer).__name__}) {why}, which streaming cannot do")
        names = ["kernel", "recurrent_kernel"] + (["bias"] if cfg["use_bias"] else [])
        specs.append(LayerSpec(
            kind=kind,
            units=int(cfg["units"]),
            weights=_weights(layer, names),
            activation=_activation_name(cfg["activation"], RECURRENT_ACTIVATIONS, layer),
            recurrent_activation=(
                _activation_name(cfg["recurrent_activation"], RECURRENT_ACTIVATIONS, layer,
                                 "recurrent_activation") if kind != "simple_rnn" else None
            ),
            use_bias=bool(cfg["use_bias"]),
            return_sequences=bool(cfg["return_sequences"]),
            reset_after=bool(cfg["reset_after"]) if kind == "gru" else None,
            name=layer.name,
        ))
    return handler


def _dense(layer, specs):
    cfg = layer.get_config()
    names = ["kernel"] + (["bias"] if cfg["use_bias"] else [])
    specs.append(LayerSpec(
        kind="dense",
        units=int(cfg["units"]),
        weights=_weights(layer, names),
        activation=_activation_name(cfg["activation"], DENSE_ACTIVATIONS, layer),
        use_bias=bool(cfg["use_bias"]),
        name=layer.name,
    ))


def _time_distributed(layer, specs):
    inner = layer.layer
    if type(inner).__name__ != "Dense":
        raise UserError(
            f"layer {layer.name!r}: TimeDistributed({type(inner).__name__}) is not supported; "
            "only TimeDistributed(Dense)"
        )
    _dense(inner, specs)
    specs[-1].name = layer.name


def _activation(layer, specs):
    name = _activation_name(layer.get_config()["activation"], DENSE_ACTIVATIONS, layer)
    if not specs or specs[-1].kind != "dense" or specs[-1].activation != "linear":
        raise UserError(
            f"layer {layer.name!r} (Activation) is only supported directly after a Dense layer "
            "with linear activation"
        )
    specs[-1].activation = name


def _affine(layer, specs, scale, offset):
    width = specs[-1].units if specs else int(_single_shape(layer.input.shape, "input")[-1])
    scale = np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (width,)).copy()
    offset = np.broadcast_to(np.asarray(offset, np.float32).reshape(-1), (width,)).copy()
    specs.append(LayerSpec(kind="affine", units=width, weights={"scale": scale, "offset": offset},
                           name=layer.name))


def _normalization(layer, specs):
    import keras

    axis = tuple(layer.axis) if isinstance(layer.axis, (list, tuple)) else (layer.axis,)
    ndim = len(_single_shape(layer.input.shape, "input"))
    if tuple(a % ndim for a in axis) != (ndim - 1,):
        raise UserError(f"layer {layer.name!r} (Normalization): only axis=-1 (per feature) is supported")
    mean = np.asarray(layer.mean, np.float64).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64).reshape(-1)), keras.config.epsilon())
    if layer.invert:
        _affine(layer, specs, std, mean)
    else:
        _affine(layer, specs, 1.0 / std, -mean / std)


def _rescaling(layer, specs):
    _affine(layer, specs, layer.scale, layer.offset)


HANDLERS = {
    "LSTM": _recurrent("lstm"),
    "GRU": _recurrent("gru"),
    "SimpleRNN": _recurrent("simple_rnn"),
    "Dense": _dense,
    "TimeDistributed": _time_distributed,
    "Activation": _activation,
    "Normalization": _normalization,
    "Rescaling": _rescaling,
}
