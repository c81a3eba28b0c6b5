"""edgelstm.converters: ModelSpec -> deployable artifacts, one module per target.

Every exporter module has ``export(spec, out_dir, options, warn) -> (files, description)``
(the artifact first; the description is the one embedded in it) and ``QUANTIZATIONS`` /
``MODES`` tuples; ``EXPORTERS`` finds them by format name. ``export`` here is the
pipeline: it settles the data once (calibration vs held-out), runs the exporter, checks
every step-mode artifact against the float numpy reference, through the runtime, and
then writes ``<artifact>.json`` once: the embedded description plus that check
(``verification``), so the two can never disagree. An exporter writes into the
pipeline's own temporary directory, which is moved into place only after the check, so
an exporter needs no atomic writes of its own.

Nothing here or in an exporter prints: what an export has to say (its check line,
warnings, notes) goes to the ``echo`` callback the caller passes, one line per call. The
CLI passes one that writes to stderr; without one, the lines go to the
``edgelstm.converters`` logger (which Python shows on stderr unless configured
otherwise), so a library caller decides where they go.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgelstm.core.errors import UserError

#: Sequences (and steps of each) streamed through a new artifact to check it: synthetic
#: inputs when no data is given (they only show that the file computes the model), and
#: up to VERIFY_HELDOUT_SEQUENCES of given held-out data, all side by side as streams of
#: one batch. The guard (``--min-agreement``) is only as good as its sample: a model that
#: changes the class of 5 % of the sequences shows no flip in 16 of them 44 % of the
#: time (0.95 ** 16), and in 370 practically never.
VERIFY_SEQUENCES, VERIFY_HELDOUT_SEQUENCES, VERIFY_STEPS = 16, 512, 400

#: Quantizations whose ranges come from calibration data (the others need none, so the
#: check on write may use all the data given).
CALIBRATED = ("int8", "int16x8")

#: Said once per export (or once per ``edgelstm export`` call) when a calibrated
#: quantization has no real data to calibrate on.
SYNTHETIC_CALIBRATION = ("warning: no real calibration data; calibrating on synthetic inputs, so the "
                         "quantization ranges may not fit real data (pass --calibration-data)")

#: format -> (module, default file suffix)
EXPORTERS = {
    "npz": ("edgelstm.converters.npz", ".npz"),
    "tflite": ("edgelstm.converters.tflite", ".tflite"),
    "onnx": ("edgelstm.converters.onnx", ".onnx"),
    "c": ("edgelstm.converters.c_source", ".c"),
}


#: Where an export's lines go when the caller passes no ``echo`` callback.
LOG = logging.getLogger("edgelstm.converters")


def log_line(message: str) -> None:
    LOG.warning(message)


@dataclass(frozen=True)
class ExportOptions:
    """What to export and with which data. Frozen: ``export`` derives the options an
    exporter sees (``dataclasses.replace``), so the caller's object serves the next
    export unchanged and no exporter can change what the check on write uses."""

    quantize: str = "float32"
    mode: str = "step"  # "step" or "sequence"
    seq_len: int | None = None  # sequence mode window length
    #: Calibration / held-out sequences (N, T, features), float32, or None.
    calibration: object = None
    #: True when ``calibration`` is synthetic (no real data was available).
    calibration_synthetic: bool = False
    #: What the calibration data is (a file, a bundled dataset), recorded in the description.
    calibration_source: str | None = None
    #: Held-out sequences (N, T, features) and their targets, to measure what a
    #: quantized export lost against the float reference. None: use ``calibration``.
    heldout: object = None
    heldout_targets: object = None
    #: What the held-out data is, for the check's line and ``verification.data``.
    heldout_source: str | None = None
    #: Bars for the check on write (see edgelstm.converters.guard): a miss writes nothing.
    min_agreement: float | None = None
    max_rmse_change: float | None = None
    opset: int | None = None
    #: Base file name (without suffix) of the artifact.
    basename: str = "model"
    #: Seconds a converter running in a child process (tflite) may take before it counts as
    #: hung; None: the converter's default.
    timeout: float | None = None


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


def export(spec, fmt: str, out_dir: str | Path, options: ExportOptions | None = None,
           echo: Callable[[str], None] | None = None) -> list[Path]:
    """Export ``spec`` to ``fmt`` in ``out_dir``; returns the paths written.

    The files are built in a temporary directory beside their destination and moved in
    only after the check on write: an export that misses ``options.min_agreement`` /
    ``max_rmse_change`` raises ``guard.ExportRejected`` and leaves ``out_dir`` as
    it was (an older file of the same name included). ``echo`` receives every line the
    export has to say (default: the ``edgelstm.converters`` logger).
    """
    from edgelstm.converters.guard import ExportRejected

    echo = echo or log_line
    options = options if options is not None else ExportOptions()
    module = check_combination(fmt, options.quantize, options.mode)
    gated = options.min_agreement is not None or options.max_rmse_change is not None
    if gated and options.mode != "step":
        raise UserError("--min-agreement / --max-rmse-change need a step-mode export (sequence mode is not "
                        "checked on write)")
    options = settle_data(options)
    if options.quantize in CALIBRATED and options.calibration is None:
        echo(SYNTHETIC_CALIBRATION)
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _build_and_move(spec, module, out_dir, options, gated, echo)
    except (ExportRejected, UserError):
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a refused export leaves no trace, not even its directory
        raise


def settle_data(options: ExportOptions) -> ExportOptions:
    """The options an exporter and the check on write see: the one place an export
    separates calibration from held-out data (``sequences.split_heldout``).

    Held-out data given (the CLI resolves both, ``calibration.resolve``): as given. Else a
    calibrated quantization holds a fifth of the calibration data out, so the check sees
    what calibration did not; the others calibrate on nothing and are checked on all of
    it. No data at all: the exporter calibrates on synthetic inputs and the check streams
    synthetic inputs of another seed (``verify``).
    """
    from edgelstm.converters.sequences import split_heldout

    if options.heldout is not None or options.calibration is None:
        return options
    if options.quantize in CALIBRATED:
        calibration, _, heldout, targets = split_heldout(options.calibration)
        return dataclasses.replace(options, calibration=calibration, heldout=heldout, heldout_targets=targets,
                                   heldout_source=options.heldout_source or "held out from the calibration data")
    return dataclasses.replace(options, heldout=options.calibration, heldout_source=options.heldout_source
                               or f"the data given ({options.quantize} uses no calibration)")


def _build_and_move(spec, module, out_dir: Path, options: ExportOptions, gated: bool, echo) -> list[Path]:
    import shutil
    import tempfile

    from edgelstm.core.artifact import write_sidecar
    from edgelstm.converters.guard import ExportRejected, gate_failures, quality_warnings

    with tempfile.TemporaryDirectory(prefix=".edgelstm-export-", dir=out_dir) as tmp:
        files, desc = module.export(spec, Path(tmp), options, echo)
        if options.mode == "step":
            lines = []
            report = measure(spec, files[0], options, echo=lines.append)
            broken = gate_failures(report or {}, options.min_agreement, options.max_rmse_change)
            if report is None and gated:
                broken.append("the new file could not be checked")
            if broken:
                raise ExportRejected(f"{files[0].name}: " + "; ".join(broken) + " (nothing written)")
            for line in lines + [f"warning: {w}" for w in quality_warnings(report or {}, options.quantize)]:
                echo(line)
            if report is not None:
                desc = dict(desc, verification=report)
        paths = files + [write_sidecar(files[0], desc)]
        final = []
        for path in paths:
            shutil.move(str(path), str(out_dir / path.name))
            final.append(out_dir / path.name)
    return final


def verify(spec, path: Path, options: ExportOptions, echo=None) -> dict | None:
    """``measure`` an artifact already written, and store the figures as ``verification``
    in its ``.json``."""
    from edgelstm.core.artifact import read_sidecar, write_sidecar

    report = measure(spec, path, options, echo)
    if report is not None:
        desc = read_sidecar(path) or {}
        desc["verification"] = report
        write_sidecar(path, desc)
    return report


def measure(spec, path: Path, options: ExportOptions, echo=None) -> dict | None:
    """Stream held-out sequences through the artifact (via the runtime, from a fresh
    state) and through the float reference; say in one line what the export lost and
    return the figures (None when they could not be measured).

    Data: ``options.heldout`` (+ targets, never the sequences calibration used: see
    ``sequences.split_heldout``), else synthetic inputs of the model's own window
    length. The line and ``verification.data`` say which. A failed measurement is a
    warning: the file is written. ``echo`` receives the lines (default: the logger).
    """
    import numpy as np

    from edgelstm.converters.accuracy import compare_artifact, format_loss
    from edgelstm.converters.sequences import DEFAULT_WINDOW, synthetic_sequences

    echo = echo or log_line
    data, targets = options.heldout, options.heldout_targets
    synthetic = bool(options.calibration_synthetic)
    source = options.heldout_source
    if data is None:
        steps = min(spec.seq_len or DEFAULT_WINDOW, VERIFY_STEPS)
        data, synthetic = synthetic_sequences(spec, n=VERIFY_SEQUENCES, steps=steps, seed=1), True
    if synthetic:
        source = "synthetic inputs"
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[None]
    count = VERIFY_SEQUENCES if synthetic else VERIFY_HELDOUT_SEQUENCES
    if targets is not None:
        targets = np.asarray(targets)[:count]
        if spec.task != "classification" and data.shape[1] > VERIFY_STEPS:
            targets = None  # a regression target belongs to the full sequence's last step
    try:
        report = compare_artifact(spec, path, data[:count, :VERIFY_STEPS], targets=targets)
    except UserError as exc:
        echo(f"warning: {path.name} was written but could not be checked ({exc})")
        return None
    report["synthetic_data"] = synthetic
    report["data"] = source or "given held-out data"
    echo(f"{path.name}: {format_loss(report)}, {report['data']}")
    return report
