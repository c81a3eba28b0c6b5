"""``edgelstm export`` of several formats and quantizations in one call.

The model is read (and TensorFlow imported) once, the calibration / held-out data
resolved once, and every variant goes through ``converters.export``, so each is checked
on write. Formats come from ``converters.EXPORTERS``: a new exporter joins ``--all``
without a change here.

File names follow one rule, the demo's too (``converters.naming``):
``<stem>[.<quantize>][.sequence]<suffix>``, the quantization left out for float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from edgelstm.converters import CALIBRATED, SYNTHETIC_CALIBRATION
from edgelstm.converters.naming import artifact_basename
from edgelstm.core.errors import UserError


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def variants(fmt: str, quantize: str, mode: str, all_variants: bool = False,
             note: Callable[[str], None] | None = None) -> list[tuple[str, str]]:
    """(format, quantization) pairs to export.

    ``all_variants``: every pair an importable exporter offers for ``mode``. Otherwise
    every pair of the comma-separated lists; pairs a format lacks are skipped when others
    remain (``--format tflite,onnx --quantize float32,int8`` has no onnx/int8), and an
    error when none does.
    """
    from edgelstm.converters import EXPORTERS, check_combination, exporter

    if all_variants:
        todo = []
        for name in EXPORTERS:
            try:
                module = exporter(name)
            except ImportError:  # its engine library is not installed here
                continue
            if mode in module.MODES:
                todo += [(name, q) for q in module.QUANTIZATIONS]
        return todo
    formats, quantizations = _split(fmt), _split(quantize)
    if not formats or not quantizations:
        raise UserError("--format and --quantize need at least one value each")
    todo, first_error = [], None
    for name in formats:
        for q in quantizations:
            try:
                check_combination(name, q, mode)
            except UserError as exc:
                if len(formats) * len(quantizations) == 1 or name not in EXPORTERS:
                    raise
                first_error = first_error or exc
                if note is not None:
                    note(f"note: {name}/{q} skipped ({exc})")
                continue
            todo.append((name, q))
    if not todo:
        raise first_error
    return todo


def export_model(model_path: Path, todo: list[tuple[str, str]], out_dir: Path, name: str | None = None,
                 c_array: bool = False, echo: Callable[[str], None] = print, **options) -> Iterator[Path]:
    """Everything ``edgelstm export`` does once ``todo`` is known: read the model, export
    every variant (``options`` as ``export_variants`` takes them) and, with ``c_array``,
    the TFLite Micro C array of every .tflite; yields every path written."""
    from edgelstm.keras_import import load_model_spec

    spec = load_model_spec(model_path)  # TensorFlow is imported once, here, for every variant
    if options.get("min_agreement") is not None and spec.task != "classification":
        raise UserError("--min-agreement needs a classifier; use --max-rmse-change for a regressor")
    for path in export_variants(spec, model_path, todo, out_dir, name, echo=echo, **options):
        yield path
        if c_array and path.suffix == ".tflite":
            from edgelstm.tflm_project import write_c_array

            yield from write_c_array(path)


def export_variants(spec, model_path: Path, todo: list[tuple[str, str]], out_dir: Path, name: str | None = None,
                    mode: str = "step", seq_len: int | None = None, opset: int | None = None,
                    calibration_file: Path | None = None, min_agreement: float | None = None,
                    max_rmse_change: float | None = None, echo: Callable[[str], None] = print) -> Iterator[Path]:
    """Export every (format, quantization) of ``todo``; yields the paths written.

    ``name`` (default: the model file's stem) is used as given for a single variant,
    and as the stem of the naming rule for several.
    """
    from edgelstm.calibration import resolve
    from edgelstm.converters import ExportOptions, export

    data = resolve(spec, model_path, calibration_file, seq_len)
    if data.synthetic and any(q in CALIBRATED for _, q in todo):
        echo(SYNTHETIC_CALIBRATION)  # once for every variant (the pipeline sees synthetic data as given)
    x_held, y_held = data.heldout
    for fmt, quantize in todo:
        basename = (name if name and len(todo) == 1
                    else artifact_basename(name or Path(model_path).stem, quantize, mode, fmt))
        if data.synthetic:
            source = "synthetic inputs"
        elif quantize in CALIBRATED:
            source = f"held out from calibration ({data.source})"
        else:
            source = f"held-out part of {data.source}"
        options = ExportOptions(quantize=quantize, mode=mode, seq_len=seq_len, opset=opset, basename=basename,
                                calibration=data.x, calibration_synthetic=data.synthetic,
                                calibration_source=data.source,
                                heldout=x_held, heldout_targets=y_held, heldout_source=source,
                                min_agreement=min_agreement, max_rmse_change=max_rmse_change)
        yield from export(spec, fmt, out_dir, options, echo=echo)
