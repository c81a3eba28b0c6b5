"""edgelstm.converters: ModelSpec -> deployable artifacts, one module per target.

Every exporter module has ``export(spec, out_dir, options) -> list[Path]`` (the artifact
first, then its ``.json``) and ``QUANTIZATIONS`` / ``MODES`` tuples; ``EXPORTERS`` finds
them by format name. ``export`` here then checks every step-mode artifact it wrote
against the float numpy reference, through the runtime, and records the result.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path

from edgelstm.errors import UserError

#: Held-out sequences (and steps of each) streamed through a new artifact to check it.
VERIFY_SEQUENCES, VERIFY_STEPS = 16, 400

#: Quantizations whose ranges come from calibration data (the others need none, so the
#: check on write may use all the data given).
CALIBRATED = ("int8", "int16x8")

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
    #: What the held-out data is, for the check's line and ``verification.data``.
    heldout_source: str | None = None
    #: Bars for the check on write (see edgelstm.export_guard): a miss writes nothing.
    min_agreement: float | None = None
    max_rmse_change: float | None = None
    opset: int | None = None
    #: Base file name (without suffix) of the artifact.
    basename: str = "model"
    extra: dict = field(default_factory=dict)


def exporter(fmt: str):
    if fmt not in EXPORTERS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORTERS)}")
    module = importlib.import_module(EXPORTERS[fmt][0])
    return module


def check_combination(fmt: str, quantize: str, mode: str):
    """The exporter module for ``fmt``, or UserError when it cannot do ``quantize`` / ``mode``."""
    module = exporter(fmt)
    if quantize not in module.QUANTIZATIONS:
        raise UserError(f"--quantize {quantize} is not available for {fmt}; "
                        f"choose from {', '.join(module.QUANTIZATIONS)}")
    if mode not in module.MODES:
        raise UserError(f"--mode {mode} is not available for {fmt}; choose from {', '.join(module.MODES)}")
    return module


def export(spec, fmt: str, out_dir: str | Path, options: ExportOptions | None = None, echo=None) -> list[Path]:
    """Export ``spec`` to ``fmt`` in ``out_dir``; returns the paths written.

    The files are built in a temporary directory beside their destination and moved in
    only after the check on write: an export that misses ``options.min_agreement`` /
    ``max_rmse_change`` raises ``export_guard.ExportRejected`` and leaves ``out_dir`` as
    it was (an older file of the same name included).
    """
    import sys

    from edgelstm.calibration import split_heldout
    from edgelstm.export_guard import ExportRejected

    echo = echo or (lambda message: print(message, file=sys.stderr))
    # A copy: the calibration / held-out split below (and the exporter's own) must not
    # change the caller's options, which may serve another export next.
    options = dataclasses.replace(options) if options is not None else ExportOptions()
    module = check_combination(fmt, options.quantize, options.mode)
    gated = options.min_agreement is not None or options.max_rmse_change is not None
    if gated and options.mode != "step":
        raise UserError("--min-agreement / --max-rmse-change need a step-mode export (sequence mode is not "
                        "checked on write)")
    if options.heldout is None and options.calibration is not None and options.quantize in CALIBRATED:
        # an API caller's data: hold some out, so the check on write sees what calibration did not
        options.calibration, _, options.heldout, options.heldout_targets = split_heldout(options.calibration)
        options.heldout_source = options.heldout_source or "held out from the calibration data"
    elif options.heldout is None and options.calibration is not None:  # nothing calibrates on it
        options.heldout = options.calibration
        options.heldout_source = options.heldout_source or f"the data given ({options.quantize} uses no calibration)"
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _build_and_move(spec, module, out_dir, options, gated, echo)
    except (ExportRejected, UserError):
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a refused export leaves no trace, not even its directory
        raise


def _build_and_move(spec, module, out_dir: Path, options: ExportOptions, gated: bool, echo) -> list[Path]:
    import shutil
    import tempfile

    from edgelstm.export_guard import ExportRejected, gate_failures, quality_warnings

    with tempfile.TemporaryDirectory(prefix=".edgelstm-export-", dir=out_dir) as tmp:
        paths = module.export(spec, Path(tmp), options)
        if options.mode == "step":
            lines = []
            report = verify(spec, paths[0], options, echo=lines.append)
            broken = gate_failures(report or {}, options.min_agreement, options.max_rmse_change)
            if report is None and gated:
                broken.append("the new file could not be checked")
            if broken:
                raise ExportRejected(f"{paths[0].name}: " + "; ".join(broken) + " (nothing written)")
            for line in lines + [f"warning: {w}" for w in quality_warnings(report or {}, options.quantize)]:
                echo(line)
        final = []
        for path in paths:
            shutil.move(str(path), str(out_dir / path.name))
            final.append(out_dir / path.name)
    return final


def verify(spec, path: Path, options: ExportOptions, echo=None) -> dict | None:
    """Stream held-out sequences through the written artifact (via the runtime, from a
    fresh state) and through the float reference; print one line saying what the export
    lost and store the figures as ``verification`` in its ``.json``.

    Data: ``options.heldout`` (+ targets, never the sequences calibration used: see
    ``calibration.split_heldout``), else synthetic inputs of the model's own window
    length. The line and ``verification.data`` say which. A failed measurement is a
    warning: the file is written.
    """
    import sys

    import numpy as np

    from edgelstm.accuracy import compare_artifact, format_loss
    from edgelstm.artifact import read_sidecar, write_sidecar
    from edgelstm.calibration import synthetic_sequences

    echo = echo or (lambda message: print(message, file=sys.stderr))
    data, targets = options.heldout, options.heldout_targets
    synthetic = bool(options.calibration_synthetic)
    source = options.heldout_source
    if data is None:
        steps = min(spec.seq_len or 100, VERIFY_STEPS)
        data, synthetic = synthetic_sequences(spec, n=VERIFY_SEQUENCES, steps=steps, seed=1), True
    if synthetic:
        source = "synthetic inputs"
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
    report["data"] = source or "given held-out data"
    echo(f"{path.name}: {format_loss(report)}, {report['data']}")
    desc = read_sidecar(path) or {}
    desc["verification"] = report
    write_sidecar(path, desc)
    return report
