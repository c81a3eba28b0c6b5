"""The self-description every exported artifact carries.

Exporters embed it in the file where the format allows (ONNX ``metadata_props``,
TFLite metadata buffer, the ``config`` entry of a ``.npz``) and write it as
``<artifact>.json`` beside the file. The runtime reads it to map tensors by name
(never by position), to size the recurrent state and to know the task.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgelstm import __version__
from edgelstm.spec import ModelSpec

STATE_OUTPUT_SUFFIX = "_next"
INPUT_NAME = "x"
OUTPUT_NAME = "y"


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
        "input": {"name": INPUT_NAME, "size": spec.input_size},
        "output": {"name": OUTPUT_NAME, "size": spec.output_size},
        "states": [
            {"name": s.name, "size": s.size, "layer": s.layer, "kind": s.kind,
             "input": s.name, "output": s.name + STATE_OUTPUT_SUFFIX}
            for s in spec.state_specs()
        ] if mode == "step" else [],
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


def step_interface(desc: dict, origin, allow_sequence: bool = False) -> tuple[str, int, int, list[tuple[str, int]]]:
    """(mode, input size, output size, [(state, size), ...]) of a described artifact.

    A sequence-mode artifact takes whole windows and has no step function: refused
    unless ``allow_sequence``. A malformed description is a UserError, never a KeyError.
    """
    from edgelstm.errors import UserError

    try:
        mode = desc.get("mode", "step")
        if mode != "step" and not allow_sequence:
            raise UserError(f"{origin}: a {mode}-mode model (windows of {desc.get('seq_len')} steps) cannot be "
                            "streamed step by step; export it with --mode step")
        return (mode, int(desc["input"]["size"]), int(desc["output"]["size"]),
                [(s["name"], int(s["size"])) for s in desc.get("states", [])])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{origin}: malformed edgelstm description ({type(exc).__name__}: {exc})") from None
