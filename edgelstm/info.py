"""``edgelstm info``: what a model or an exported artifact contains.

A Keras model or an ``.npz`` spec is described from its ModelSpec (layers, parameters,
MACs per step, state); an artifact (``.tflite``, ``.onnx``, ``.c``) by a reader of its
own format, which needs no engine, so this works in the lean on-device install.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from edgelstm.core.errors import UserError, one_line, require_file
from edgelstm.keras_import import KERAS_SUFFIXES, load_model_spec
from edgelstm.reports import format_table

#: artifact suffix -> module with ``inspect(path) -> dict`` (engine-level details)
INSPECTORS = {".tflite": "edgelstm.runtime.tflite_info", ".onnx": "edgelstm.runtime.onnx_info",
              ".c": "edgelstm.runtime.native_backend"}
STATS = ("parameters", "macs_per_step", "state_floats", "weight_bytes_float32")
#: shown one per line near the top (an artifact's description holds most of them)
HEADLINE = ("name", "model_name", "task", "format", "quantize", "mode", "input_size", "output_size")


def describe(path: Path) -> dict:
    """Everything ``info`` reports about ``path``, as one JSON-ready dict."""
    path = require_file(path)
    suffix = path.suffix.lower()
    data: dict = {"file": str(path), "file_bytes": path.stat().st_size}
    if suffix in KERAS_SUFFIXES or suffix == ".npz":
        spec = load_model_spec(path)
        data.update({"name": spec.name, "task": spec.task, "input_size": spec.input_size,
                     "output_size": spec.output_size, "class_names": spec.class_names,
                     "returns_sequences": spec.returns_sequences, "source_hash": spec.source_hash,
                     "states": [s.__dict__ for s in spec.state_specs()],
                     "layers": [layer.config() for layer in spec.layers], **spec.stats()})
    elif suffix in INSPECTORS:  # readers of their own (struct / protobuf): no engine needed
        try:
            data.update(importlib.import_module(INSPECTORS[suffix]).inspect(path))
        except UserError:
            raise
        except Exception as exc:  # a malformed file can trip the parser anywhere
            raise UserError(f"{path}: cannot read this file ({one_line(exc, with_type=True)})") from None
    else:
        raise UserError(f"{path}: unknown file type {suffix!r} (expected .keras, .h5, .npz, .tflite, .onnx or .c)")
    return data


def layers_table(layers: list[dict]) -> list[str]:
    rows = [("#", "layer", "kind", "units", "activation", "recurrent", "sequences")]
    for i, cfg in enumerate(layers):
        rows.append((str(i), cfg.get("name", ""), cfg["kind"], str(cfg["units"]), cfg.get("activation", ""),
                     str(cfg.get("recurrent_activation") or ""),
                     str(cfg.get("return_sequences", "")) if cfg["kind"] in ("lstm", "gru", "simple_rnn") else ""))
    return format_table(rows, rule=False)


def format_info(data: dict) -> list[str]:
    """The human report of ``describe``'s dict. A damaged description shows what is
    there rather than fail."""
    desc = data.get("description") or {}
    layers = data.get("layers") or desc.get("layers")
    stats = {k: data[k] for k in STATS if k in data} or desc.get("stats") or {}
    lines = [f"{data['file']}  ({data['file_bytes']:,} bytes)"]
    # An artifact's description keeps the sizes under input/output.
    sizes = {f"{io}_size": (desc.get(io) or {}).get("size") for io in ("input", "output")}
    for key in HEADLINE:
        value = data.get(key, desc.get(key, sizes.get(key)))
        if value is not None:
            lines.append(f"  {key:<22}{value}")
    if isinstance(layers, list) and layers and all(isinstance(c, dict) and {"kind", "units"} <= set(c)
                                                   for c in layers):
        lines += ["", *("  " + line for line in layers_table(layers))]
    if not (isinstance(stats, dict) and all(isinstance(stats.get(k), int) for k in STATS)):
        stats = {}
    if stats:
        lines += ["",
                  f"  parameters            {stats['parameters']:,}",
                  f"  MACs per step         {stats['macs_per_step']:,}",
                  f"  state size (floats)   {stats['state_floats']:,}",
                  f"  weight memory         {stats['weight_bytes_float32']:,} bytes as float32"]
    shown = {"file", "file_bytes", "file_size", "path", "description", "layers", "states", *HEADLINE, *stats}
    for key, value in data.items():
        if key in shown:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"  {key}")
            lines += ["    " + "  ".join(f"{k}={v}" for k, v in item.items()) for item in value]
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
            value = value if len(value) < 200 else value[:197] + "..."
        lines.append(f"  {key:<22}{value}")
    return lines
