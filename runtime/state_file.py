"""The recurrent state of every stream, saved so a stream can resume in a later run.

One ``.npz`` file (``np.savez``, read back with ``allow_pickle=False``): the stream ids,
one (streams, size) float32 array per state vector, and a JSON header naming the model
(its ``spec_hash``) and how many rows the state has seen. Writes are atomic: the data
goes to a temporary file in the same directory, is flushed to disk, and only then
replaces the old file (``os.replace``), so a crash at any moment leaves either the old
state or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelstm.core.errors import UserError, one_line
from edgelstm.core.metrics import all_finite

FORMAT = 1
_STREAMS = "streams"
_HEADER = "header"


@dataclass
class SavedState:
    #: stream id -> {state name: (1, size) float32}
    streams: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: Rows stepped into these states, over every run that wrote the file.
    rows: int = 0


def model_identity(description: dict) -> str:
    """What a state belongs to: the weights hash (same for every export of one model)."""
    return str(description.get("spec_hash") or "")


def save(path: str | Path, streams: dict[str, dict[str, np.ndarray]], state_sizes: list[tuple[str, int]],
         description: dict, rows: int = 0) -> None:
    """Write every stream's state to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    ids = list(streams)
    arrays = {_STREAMS: np.array(ids, dtype=str) if ids else np.zeros(0, "<U1")}
    for name, size in state_sizes:
        stacked = np.zeros((len(ids), size), np.float32)
        for k, sid in enumerate(ids):
            stacked[k] = np.asarray(streams[sid][name], np.float32).reshape(size)
            if not all_finite(stacked[k]):  # a diverged model: such a file could never be resumed
                raise UserError(f"{path}: state {name!r} of stream {sid!r} holds NaN or inf (the model "
                                "diverged on this input); the last good state file is kept")
        arrays[f"state/{name}"] = stacked
    header = {"format": FORMAT, "model": model_identity(description), "rows": int(rows),
              "states": [[name, int(size)] for name, size in state_sizes]}
    arrays[_HEADER] = np.array(json.dumps(header))
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the state file ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; keep the mode a plain open() would give
                os.fchmod(fh.fileno(), _file_mode(path))
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Whatever stopped the write (disk full, Ctrl-C), the previous file is untouched.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | Path, state_sizes: list[tuple[str, int]], description: dict) -> SavedState:
    """Read a state file written by :func:`save` for the same model; UserError otherwise."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data[_HEADER][()]))
            ids = [str(s) for s in data[_STREAMS].tolist()]
            arrays = {k[len("state/"):]: np.array(data[k]) for k in data.files if k.startswith("state/")}
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: not a valid edgelstm state file ({one_line(exc)})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{path}: not an edgelstm state file (format {header.get('format')!r})"
                        if isinstance(header, dict) else f"{path}: not an edgelstm state file")
    want_model, have_model = model_identity(description), str(header.get("model") or "")
    if want_model and have_model and want_model != have_model:
        raise UserError(f"{path}: the state belongs to another model (weights {have_model[:12]}, "
                        f"this model {want_model[:12]})")
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: stream ids are not unique")
    expected = {name: size for name, size in state_sizes}
    if set(arrays) != set(expected):
        raise UserError(f"{path}: holds states {sorted(arrays)}, the model has {sorted(expected)}")
    streams: dict[str, dict[str, np.ndarray]] = {sid: {} for sid in ids}
    for name, size in state_sizes:
        value = arrays[name]
        if value.dtype != np.float32 or value.shape != (len(ids), size):
            raise UserError(f"{path}: state {name!r} is {value.dtype} {value.shape}, "
                            f"expected float32 {(len(ids), size)}")
        if not all_finite(value):
            raise UserError(f"{path}: state {name!r} holds NaN or inf")
        for k, sid in enumerate(ids):
            streams[sid][name] = value[k:k + 1].copy()
    rows = header.get("rows", 0)
    return SavedState(streams, int(rows) if isinstance(rows, int) and rows >= 0 else 0)


