"""edgelstm.runtime: stateful step-by-step inference on the device.

Needs numpy and one inference engine; never imports TensorFlow, Keras or onnx.

    from edgelstm import runtime
    model = runtime.load("model.tflite", streams=1)   # backend picked by file type
    y = model.step(x)                                  # x: (features,) -> (outputs,)
    model.reset()
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edgelstm.core.errors import UserError, one_line, require_file
from edgelstm.runtime.ranges import CalibrationRangeWarning
from edgelstm.runtime.stateful import BadInputError, StatefulModel

__all__ = ["BACKENDS", "BadInputError", "CalibrationRangeWarning", "StatefulModel", "available_backends", "load",
           "open_backend"]

#: backend name -> (module, class, file suffixes it runs, pip extra that provides it)
BACKENDS = {
    "numpy": ("edgelstm.runtime.numpy_backend", "NumpyBackend", (".npz",), None),
    "litert": ("edgelstm.runtime.litert_backend", "LiteRTBackend", (".tflite",), "litert"),
    "tflm": ("edgelstm.runtime.tflm_backend", "TFLMBackend", (".tflite",), "tflm"),
    "onnxruntime": ("edgelstm.runtime.onnxruntime_backend", "OnnxRuntimeBackend", (".onnx",), "onnxruntime"),
    "native": ("edgelstm.runtime.native_backend", "NativeBackend", (".c",), None),
}


def _backend_class(name: str):
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    module, cls, _, extra = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        hint = f': pip install "edgelstm[{extra}]"' if extra else ""
        raise UserError(f"backend {name!r} is not available ({exc}){hint}") from None


def available_backends(path: str | Path | None = None) -> list[str]:
    """Backends that import here (and run files like ``path``, if given)."""
    suffix = Path(path).suffix.lower() if path is not None else None
    names = []
    for name, (_, _, suffixes, _) in BACKENDS.items():
        if suffix is not None and suffix not in suffixes:
            continue
        try:
            _backend_class(name)
        except UserError:
            continue
        names.append(name)
    return names


def open_backend(path: str | Path, backend: str = "auto", threads: int | None = None, streams: int = 1):
    """The backend object for an artifact (``auto``: the first that runs its file type).

    Every backend class takes ``(path, threads=None, batch=1)``; ``batch`` is the number
    of streams stepped together (engines with fixed shapes size their tensors by it).
    """
    path = require_file(path)
    suffix = path.suffix.lower()
    if backend == "auto":
        candidates = [n for n, (_, _, sfx, _) in BACKENDS.items() if suffix in sfx]
        if not candidates:
            raise UserError(f"{path}: unknown artifact type {suffix!r} (expected .npz, .tflite, .onnx or .c)")
        errors = []
        for name in candidates:
            try:
                cls = _backend_class(name)
            except UserError as exc:
                errors.append(str(exc))
                continue
            return _construct(name, cls, path, threads, streams)
        raise UserError(f"{path}: no backend for {suffix} files is installed; " + "; ".join(errors))
    cls = _backend_class(backend)
    if suffix not in BACKENDS[backend][2]:
        raise UserError(f"{path}: backend {backend!r} runs {', '.join(BACKENDS[backend][2])} files, not {suffix!r}")
    return _construct(backend, cls, path, threads, streams)


def _construct(name: str, cls, path: Path, threads, streams):
    from edgelstm.runtime import crash_probe

    if name in crash_probe.PROBES:  # an engine that can crash on a malformed file: probe it in a child
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
        crash_probe.check_engine(name, data, str(path))
    try:
        return cls(path, threads=threads, batch=streams)
    except UserError:
        raise
    except Exception as exc:  # a malformed file can trip any parser or engine check
        raise UserError(f"{path}: the {name} backend cannot load this file ({one_line(exc, with_type=True)})") from None



def load(path: str | Path, backend: str = "auto", streams: int = 1, threads: int | None = None,
         on_range=None) -> StatefulModel:
    """Load an exported artifact (.npz, .tflite, .onnx, .c) as a StatefulModel.

    ``on_range(summary)``: called once when a quantized model first sees an input outside
    its calibrated range (or pins an output); default: a ``CalibrationRangeWarning``.
    """
    return StatefulModel(open_backend(path, backend, threads=threads, streams=streams), streams=streams,
                         on_range=on_range)


def __dir__():
    # What `dir(runtime)`, tab completion and `import *` offer: the API, not the helpers' imports.
    return sorted(__all__)
