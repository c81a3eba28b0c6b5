"""The self-description every exported artifact carries.

Exporters embed it in the file where the format allows (ONNX ``metadata_props``,
TFLite metadata buffer, the ``config`` entry of a ``.npz``) and write it as
``<artifact>.json`` beside the file. The runtime reads it to map tensors by name
(never by position), to size the recurrent state and to know the task.

``StepInterface`` is the step-graph contract in it: the input, the output and every
recurrent state with the name it is fed under and the name its next value comes out
under. The naming conventions live only here; exporters name tensors through
``StepInterface.from_spec`` and backends find them through
``StepInterface.from_description``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgelstm import __version__

if TYPE_CHECKING:  # spec.py asks this module for state names: no import at run time
    from edgelstm.core.spec import ModelSpec

# The tensor-naming conventions of every step graph, written here and nowhere else:
# exporters name graph tensors and backends find them only through StepInterface.
INPUT_NAME = "x"
OUTPUT_NAME = "y"
STATE_OUTPUT_SUFFIX = "_next"


def state_name(layer: int, kind: str) -> str:
    """The name of recurrent state ``kind`` ("h" or "c") of layer ``layer``, e.g. ``l0_h``."""
    return f"l{layer}_{kind}"


@dataclass(frozen=True)
class StateIO:
    """One recurrent state as step-graph I/O: fed as input ``name``, returned as ``output``."""

    name: str
    output: str
    size: int
    layer: int | None = None  # owning layer and "h" / "c"; None when a description omits them
    kind: str | None = None


@dataclass(frozen=True)
class StepInterface:
    """What a step graph takes and returns: the input, the output and every state, by name.

    Built from a ModelSpec by the exporters (so every target names its tensors alike) and
    parsed from an artifact's description by the backends (so they map tensors by name,
    never by position). Sequence-mode graphs carry no state I/O, but ``from_spec`` still
    lists the states: a sequence graph keeps them inside, under the same names.
    """

    input: str
    input_size: int
    output: str
    output_size: int
    states: tuple[StateIO, ...] = ()
    mode: str = "step"

    @classmethod
    def from_spec(cls, spec: ModelSpec, mode: str = "step") -> StepInterface:
        states = tuple(StateIO(s.name, s.name + STATE_OUTPUT_SUFFIX, s.size, s.layer, s.kind)
                       for s in spec.state_specs())
        return cls(INPUT_NAME, spec.input_size, OUTPUT_NAME, spec.output_size, states, mode)

    @classmethod
    def from_description(cls, desc: dict, origin, allow_sequence: bool = False) -> StepInterface:
        """The interface an artifact's description names.

        A sequence-mode artifact takes whole windows and has no step function: refused
        unless ``allow_sequence``. A malformed description is a UserError, never a KeyError.
        """
        from edgelstm.core.errors import UserError

        try:
            mode = desc.get("mode", "step")
            if mode != "step" and not allow_sequence:
                raise UserError(f"{origin}: a {mode}-mode model (windows of {desc.get('seq_len')} steps) cannot be "
                                "streamed step by step; export it with --mode step")
            states = tuple(StateIO(str(s["name"]), str(s.get("output", s["name"] + STATE_OUTPUT_SUFFIX)),
                                   int(s["size"]), s.get("layer"), s.get("kind"))
                           for s in desc.get("states", []))
            return cls(str(desc["input"].get("name", INPUT_NAME)), int(desc["input"]["size"]),
                       str(desc["output"].get("name", OUTPUT_NAME)), int(desc["output"]["size"]), states, mode)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{origin}: malformed edgelstm description ({type(exc).__name__}: {exc})") from None

    @property
    def state_sizes(self) -> list[tuple[str, int]]:
        """[(state name, size), ...]: how the runtime sizes and keys its state dicts."""
        return [(s.name, s.size) for s in self.states]

    def layer_states(self, layer: int) -> tuple[StateIO, ...]:
        """The states of layer ``layer``, in the order its cell takes them (h, then c)."""
        return tuple(s for s in self.states if s.layer == layer)

    def describe(self) -> dict:
        """The ``input`` / ``output`` / ``states`` entries of an artifact's description."""
        return {
            "input": {"name": self.input, "size": self.input_size},
            "output": {"name": self.output, "size": self.output_size},
            "states": [{"name": s.name, "size": s.size, "layer": s.layer, "kind": s.kind,
                        "input": s.name, "output": s.output}
                       for s in self.states] if self.mode == "step" else [],
        }


def describe(spec: ModelSpec, fmt: str, quantize: str = "float32", mode: str = "step",
             seq_len: int | None = None, **extra) -> dict:
    """The description of an artifact built from ``spec``."""
    first = spec.layers[0]
    scaling = None
    if first.kind == "affine":
        scaling = {"scale": first.weights["scale"].tolist(), "offset": first.weights["offset"].tolist()}
    desc = {
        "edgelstm_version": __version__,
        "format": fmt,
        "quantize": quantize,
        "mode": mode,
        "seq_len": seq_len,
        "model_name": spec.name,
        "task": spec.task,
        "class_names": spec.class_names,
        "returns_sequences": spec.returns_sequences,
        **StepInterface.from_spec(spec, mode).describe(),
        "input_scaling": scaling,
        "source_hash": spec.source_hash,
        "spec_hash": spec.weights_hash(),
        "stats": spec.stats(),
        "layers": [layer.config() for layer in spec.layers],
    }
    desc.update(extra)
    return desc


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def write_sidecar(artifact: str | Path, desc: dict) -> Path:
    path = sidecar_path(artifact)
    path.write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(artifact: str | Path) -> dict | None:
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        desc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return desc if isinstance(desc, dict) else None
