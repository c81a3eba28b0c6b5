"""ModelSpec: the framework-neutral description of a recurrent model.

The one contract between the Keras importer, the exporters and the runtime. It holds
an ordered list of layers (kind, hyper-parameters, float32 weights) and nothing that
needs TensorFlow, so the on-device runtime can load it from a ``.npz`` archive.

Layer kinds and their weights (Keras layouts, unchanged):

=========== ======================================================================
kind        weights
=========== ======================================================================
lstm        kernel (F, 4U), recurrent_kernel (U, 4U), bias (4U,)   gates i, f, c, o
gru         kernel (F, 3U), recurrent_kernel (U, 3U),              gates z, r, h
            bias (2, 3U) when reset_after (input bias, recurrent bias) else (3U,)
simple_rnn  kernel (F, U), recurrent_kernel (U, U), bias (U,)
dense       kernel (F, U), bias (U,)                               applied per step
affine      scale (F,), offset (F,)            y = x * scale + offset, per feature
=========== ======================================================================
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelstm import __version__
from edgelstm.core.artifact import state_name
from edgelstm.core.errors import UserError, one_line

RECURRENT_KINDS = ("lstm", "gru", "simple_rnn")
LAYER_KINDS = RECURRENT_KINDS + ("dense", "affine")
#: Activations a recurrent layer may use (for activation and recurrent_activation).
RECURRENT_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign")
DENSE_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
#: Recurrent states per cell kind, in the order the step graphs carry them.
STATE_KINDS = {"lstm": ("h", "c"), "gru": ("h",), "simple_rnn": ("h",)}
#: Gate blocks per cell kind (kernel width = GATES * units).
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}

SPEC_FORMAT = 1


@dataclass
class LayerSpec:
    kind: str
    units: int
    weights: dict[str, np.ndarray]
    activation: str = "linear"
    recurrent_activation: str | None = None
    use_bias: bool = True
    return_sequences: bool = True
    reset_after: bool | None = None
    name: str = ""

    @property
    def recurrent(self) -> bool:
        return self.kind in RECURRENT_KINDS

    def config(self) -> dict:
        cfg = {
            "kind": self.kind,
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "name": self.name,
        }
        if self.recurrent:
            cfg["return_sequences"] = self.return_sequences
            cfg["recurrent_activation"] = self.recurrent_activation
        if self.kind == "gru":
            cfg["reset_after"] = self.reset_after
        return cfg


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state vector: name (``artifact.state_name``), owning layer index, kind and size."""

    name: str
    layer: int
    kind: str  # "h" or "c"
    size: int


@dataclass
class ModelSpec:
    input_size: int
    layers: list[LayerSpec]
    name: str = "model"
    #: "classification" (softmax/sigmoid head), "regression" or "sequence" (unknown).
    task: str = "regression"
    class_names: list[str] | None = None
    #: Length of the windows the model was trained on (a sensible sequence-mode T).
    seq_len: int | None = None
    source_hash: str = ""
    #: Free-form extra description (dataset name, training report, ...).
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    # -- structure ---------------------------------------------------------------
    def validate(self) -> None:
        if not self.layers:
            raise UserError("model has no layers edgelstm can run")
        width = self.input_size
        seen_collapse = False
        for i, layer in enumerate(self.layers):
            if layer.kind not in LAYER_KINDS:
                raise UserError(f"layer {i}: unknown kind {layer.kind!r}")
            if layer.recurrent and seen_collapse:
                raise UserError(
                    f"layer {i} ({layer.name or layer.kind}): a recurrent layer after one "
                    "with return_sequences=False is not supported"
                )
            _check_activations(layer, i)
            expected = _weight_shapes(layer, width)
            for key, shape in expected.items():
                w = layer.weights.get(key)
                if w is None:
                    raise UserError(f"layer {i} ({layer.kind}): missing weight {key!r}")
                if tuple(w.shape) != shape:
                    raise UserError(
                        f"layer {i} ({layer.kind}): weight {key!r} has shape {tuple(w.shape)},"
                        f" expected {shape}"
                    )
                if w.dtype != np.float32:
                    layer.weights[key] = w.astype(np.float32)
            extra = set(layer.weights) - set(expected)
            if extra:
                raise UserError(f"layer {i} ({layer.kind}): unexpected weights {sorted(extra)}")
            if layer.recurrent and not layer.return_sequences:
                seen_collapse = True
            width = layer.units

    @property
    def output_size(self) -> int:
        return self.layers[-1].units

    @property
    def recurrent_layers(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if layer.recurrent]

    @property
    def returns_sequences(self) -> bool:
        """True when the Keras model outputs one vector per timestep."""
        return all(self.layers[i].return_sequences for i in self.recurrent_layers)

    def state_specs(self) -> list[StateSpec]:
        out = []
        for i, layer in enumerate(self.layers):
            for kind in STATE_KINDS.get(layer.kind, ()):
                out.append(StateSpec(state_name(i, kind), i, kind, layer.units))
        return out

    def stats(self) -> dict:
        """Parameters, multiply-accumulates per step, state size and weight memory."""
        params = sum(int(w.size) for layer in self.layers for w in layer.weights.values())
        macs = 0
        width = self.input_size
        for layer in self.layers:
            if layer.recurrent:
                macs += (width + layer.units) * GATES[layer.kind] * layer.units
            elif layer.kind == "dense":
                macs += width * layer.units
            else:
                macs += width
            width = layer.units
        state = sum(s.size for s in self.state_specs())
        return {
            "parameters": params,
            "macs_per_step": macs,
            "state_floats": state,
            "weight_bytes_float32": params * 4,
        }

    # -- identity ----------------------------------------------------------------
    def config(self) -> dict:
        return {
            "format": SPEC_FORMAT,
            "edgelstm_version": __version__,
            "name": self.name,
            "input_size": self.input_size,
            "task": self.task,
            "class_names": self.class_names,
            "seq_len": self.seq_len,
            "source_hash": self.source_hash,
            "meta": self.meta,
            "layers": [layer.config() for layer in self.layers],
        }

    def weights_hash(self) -> str:
        h = hashlib.sha256()
        for i, layer in enumerate(self.layers):
            for key in sorted(layer.weights):
                h.update(f"{i}/{key}".encode())
                h.update(np.ascontiguousarray(layer.weights[key], dtype=np.float32).tobytes())
        return h.hexdigest()

    # -- .npz archive ------------------------------------------------------------
    def save_npz(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {"config": np.array(json.dumps(self.config()))}
        for i, layer in enumerate(self.layers):
            for key, w in layer.weights.items():
                arrays[f"layer{i}/{key}"] = np.asarray(w, dtype=np.float32)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                config = json.loads(str(data["config"][()]))
                arrays = {key: np.array(data[key]) for key in data.files if key != "config"}
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except UserError:
            raise
        except Exception as exc:  # zip, json, key and dtype errors of a broken archive
            raise UserError(f"{path}: not a valid edgelstm .npz spec archive ({one_line(exc)})") from None
        return cls.from_config(config, arrays, origin=str(path))

    @classmethod
    def from_config(cls, config: dict, arrays: dict[str, np.ndarray], origin: str = "spec") -> ModelSpec:
        try:
            if config.get("format") != SPEC_FORMAT:
                raise ValueError(f"unsupported spec format {config.get('format')!r}")
            layers = []
            for i, cfg in enumerate(config["layers"]):
                prefix = f"layer{i}/"
                weights = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                layers.append(
                    LayerSpec(
                        kind=str(cfg["kind"]),
                        units=int(cfg["units"]),
                        weights=weights,
                        activation=str(cfg["activation"]),
                        recurrent_activation=cfg.get("recurrent_activation"),
                        use_bias=bool(cfg["use_bias"]),
                        return_sequences=bool(cfg.get("return_sequences", True)),
                        reset_after=cfg.get("reset_after"),
                        name=str(cfg.get("name", "")),
                    )
                )
            return cls(
                input_size=int(config["input_size"]),
                layers=layers,
                name=str(config.get("name", "model")),
                task=str(config.get("task", "regression")),
                class_names=config.get("class_names"),
                seq_len=config.get("seq_len"),
                source_hash=str(config.get("source_hash", "")),
                meta=dict(config.get("meta") or {}),
            )
        except UserError as exc:
            raise UserError(f"{origin}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{origin}: malformed model description ({one_line(exc)})") from None


def _check_activations(layer: LayerSpec, i: int) -> None:
    allowed = RECURRENT_ACTIVATIONS if layer.recurrent else DENSE_ACTIVATIONS
    if layer.kind == "affine":
        return
    if layer.activation not in allowed:
        raise UserError(f"layer {i} ({layer.kind}): unsupported activation {layer.activation!r}")
    if layer.kind in ("lstm", "gru") and layer.recurrent_activation not in RECURRENT_ACTIVATIONS:
        raise UserError(
            f"layer {i} ({layer.kind}): unsupported recurrent_activation {layer.recurrent_activation!r}"
        )


def _weight_shapes(layer: LayerSpec, width: int) -> dict[str, tuple]:
    u = layer.units
    if layer.kind == "affine":
        if u != width:
            raise UserError(f"affine layer has {u} features, its input has {width}")
        return {"scale": (u,), "offset": (u,)}
    if layer.kind == "dense":
        shapes = {"kernel": (width, u)}
        if layer.use_bias:
            shapes["bias"] = (u,)
        return shapes
    g = GATES[layer.kind]
    shapes = {"kernel": (width, g * u), "recurrent_kernel": (u, g * u)}
    if layer.use_bias:
        shapes["bias"] = (2, g * u) if layer.kind == "gru" and layer.reset_after else (g * u,)
    return shapes


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
