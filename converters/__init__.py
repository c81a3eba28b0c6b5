"""edgelstm.converters: ModelSpec -> deployable artifacts, one module per target.

Every exporter module has ``export(spec, out_dir, options) -> list[Path]`` and a
``QUANTIZATIONS`` tuple; ``EXPORTERS`` finds them by format name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from edgelstm.errors import UserError

#: format -> (module, default file suffix)
EXPORTERS = {
    "npz": ("edgelstm.converters.npz", ".npz"),
    "tflite": ("edgelstm.converters.tflite", ".tflite"),
    "onnx": ("edgelstm.converters.onnx", ".onnx"),
}


@dataclass
class ExportOptions:
    quantize: str = "float32"
    mode: str = "step"  # "step" or "sequence"
    seq_len: int | None = None  # sequence mode window length
    #: Calibration / held-out sequences (N, T, features), float32, or None.
    calibration: object = None
    #: True when ``calibration`` is synthetic (no real data was available).
    calibration_synthetic: bool = False
    #: Held-out sequences (N, T, features) and their targets, to measure what a
    #: quantized export lost against the float reference. None: use ``calibration``.
    heldout: object = None
    heldout_targets: object = None
    opset: int | None = None
    #: Base file name (without suffix) of the artifact.
    basename: str = "model"
    extra: dict = field(default_factory=dict)


def exporter(fmt: str):
    if fmt not in EXPORTERS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORTERS)}")
    module = importlib.import_module(EXPORTERS[fmt][0])
    return module


def export(spec, fmt: str, out_dir: str | Path, options: ExportOptions | None = None) -> list[Path]:
    """Export ``spec`` to ``fmt`` in ``out_dir``; returns the paths written."""
    options = options or ExportOptions()
    module = exporter(fmt)
    if options.quantize not in module.QUANTIZATIONS:
        raise UserError(
            f"--quantize {options.quantize} is not available for {fmt}; "
            f"choose from {', '.join(module.QUANTIZATIONS)}"
        )
    if options.mode not in module.MODES:
        raise UserError(f"--mode {options.mode} is not available for {fmt}; choose from {', '.join(module.MODES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return module.export(spec, out_dir, options)
