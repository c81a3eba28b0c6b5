"""Exported artifacts of zoo cases, built once per test process and shared by test modules.

``artifact(case_id, backend)`` gives the file that ``backend`` runs (numpy: .npz,
litert/tflm: .tflite, onnxruntime: .onnx, native: .c), exported through the public converter API.
Backends whose engine is not installed are not in ``BACKENDS`` (CI installs them all).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

import zoo

#: backend -> artifact format it runs
FORMATS = {"numpy": "npz", "litert": "tflite", "tflm": "tflite", "onnxruntime": "onnx", "native": "c"}


def _exporter_available(fmt: str) -> bool:
    from edgelstm.converters import EXPORTERS

    try:
        importlib.import_module(EXPORTERS[fmt][0])
    except ImportError:
        return False
    return True


def _backends() -> list[str]:
    from edgelstm.runtime import available_backends

    return [b for b in available_backends() if _exporter_available(FORMATS[b])]


BACKENDS = _backends()

_root = Path(tempfile.mkdtemp(prefix="edgelstm-test-exports-"))
atexit.register(shutil.rmtree, _root, ignore_errors=True)


def calibration(case_id: str) -> np.ndarray:
    """Seeded calibration sequences in the zoo's input range (uniform -1..1)."""
    features = zoo.BY_ID[case_id].features
    return np.random.default_rng(7).uniform(-1, 1, (16, 40, features)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def export(case_id: str, fmt: str, quantize: str = "float32") -> Path:
    from edgelstm.converters import ExportOptions, export as run_export

    basename = f"{case_id}.{quantize}"
    if fmt == "c":  # the name of a C export is also its C prefix
        from edgelstm.converters.c_source import c_identifier

        basename = c_identifier(basename)
    options = ExportOptions(quantize=quantize, basename=basename,
                            calibration=calibration(case_id) if quantize != "float32" else None)
    out = _root / fmt
    return run_export(zoo.spec(case_id), fmt, out, options)[0]


def artifact(case_id: str, backend: str, quantize: str = "float32") -> Path:
    return export(case_id, FORMATS[backend], quantize)
