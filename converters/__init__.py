"""edgelstm.converters: ModelSpec -> deployable artifacts, one module per target.

Every exporter module has ``export(spec, out_dir, options) -> list[Path]`` (the artifact
first, then its ``.json``) and ``QUANTIZATIONS`` / ``MODES`` tuples; ``EXPORTERS`` finds
them by format name. ``export`` here then checks every step-mode artifact it wrote
against the float numpy reference, through the runtime, and records the result.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from edgelstm.errors import UserError

#: Held-out sequences (and steps of each) streamed through a new artifact to check it.
VERIFY_SEQUENCES, VERIFY_STEPS = 16, 400

#: format -> (module, default file suffix)
EXPORTERS = {
    "npz": ("edgelstm.converters.npz", ".npz"),
    "tflite": ("edgelstm.converters.tflite", ".tflite"),
    "onnx": ("edgelstm.converters.onnx", ".onnx"),
    "c": ("edgelstm.converters.c_source", ".c"),
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
    paths = module.export(spec, out_dir, options)
    if options.mode == "step":
        verify(spec, paths[0], options)
    return paths


def verify(spec, path: Path, options: ExportOptions, echo=None) -> dict | None:
    """Stream held-out sequences through the written artifact (via the runtime, from a
    fresh state) and through the float reference; print one line saying what the export
    lost and store the figures as ``verification`` in its ``.json``.

    Data: ``options.heldout`` (+ targets), else ``options.calibration``, else synthetic
    inputs (said in the line). A failed measurement is a warning: the file is written.
    """
    import sys

    import numpy as np

    from edgelstm.accuracy import compare_artifact, format_loss
    from edgelstm.artifact import read_sidecar, write_sidecar
    from edgelstm.calibration import synthetic_sequences

    echo = echo or (lambda message: print(message, file=sys.stderr))
    data, targets = options.heldout, options.heldout_targets
    synthetic = bool(options.calibration_synthetic)
    if data is None:
        data, targets = options.calibration, None
    if data is None:
        steps = min(spec.seq_len or 100, VERIFY_STEPS)
        data, synthetic = synthetic_sequences(spec, n=VERIFY_SEQUENCES, steps=steps), True
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[None]
    if targets is not None:
        targets = np.asarray(targets)[:VERIFY_SEQUENCES]
        if spec.task != "classification" and data.shape[1] > VERIFY_STEPS:
            targets = None  # a regression target belongs to the full sequence's last step
    try:
        report = compare_artifact(spec, path, data[:VERIFY_SEQUENCES, :VERIFY_STEPS], targets=targets)
    except UserError as exc:
        echo(f"warning: {path.name} was written but could not be checked ({exc})")
        return None
    report["synthetic_data"] = synthetic
    echo(f"{path.name}: {format_loss(report)}" + (" (synthetic inputs)" if synthetic else ""))
    desc = read_sidecar(path) or {}
    desc["verification"] = report
    write_sidecar(path, desc)
    return report
