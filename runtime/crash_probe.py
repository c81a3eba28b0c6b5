"""A crash probe: keep a native engine's crash on a malformed model file out of the
caller's process.

LiteRT and ONNX Runtime verify a model's structure before using it. TFLite Micro's
Python interpreter does not: a bit-flipped ``.tflite`` whose operators name tensors
that do not exist makes ``Interpreter.from_bytes`` segfault (found by tests/test_fuzz.py).
So before TFLM sees a file in this process, a short-lived child process loads it and
invokes it once; if the child dies by a signal or hangs, the file is refused with a
UserError. Answers are cached per file content, so each file costs one probe (~0.2 s)
per process.

``killed_by`` is the one place a child's death by a signal is put into words (the TFLite
converter's child uses it too).
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys

from edgelstm.core.errors import UserError
from edgelstm.runtime.tflm_arena import ARENA_LIMIT

#: Seconds a probe may take: loading and invoking a model takes milliseconds.
PROBE_TIMEOUT = 60

_TFLM_PROBE = f"""
import sys
from tflite_micro.python.tflite_micro import runtime
data = sys.stdin.buffer.read()
try:
    runtime.Interpreter.from_bytes(data, arena_size={ARENA_LIMIT}).invoke()
except Exception:
    pass  # an error the engine reports is not a crash: the caller meets it again, as an exception
"""
PROBES = {"tflm": _TFLM_PROBE}

_verdicts: dict[tuple[str, str], str | None] = {}


def killed_by(returncode: int) -> str | None:
    """``"killed by signal 11, SIGSEGV"`` for a child that a signal ended (``subprocess``
    reports it as a negative return code), ``"killed by signal 77"`` for a number without
    a name here; None for a child that exited."""
    if returncode >= 0:
        return None
    number = -returncode
    try:
        return f"killed by signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"killed by signal {number}"


def engine_crash(engine: str, data: bytes) -> str | None:
    """How ``engine`` fails fatally on the model ``data`` ("crashed (killed by signal 11,
    SIGSEGV)", "hung ..."), or None when it loads and invokes it, or reports an ordinary error."""
    key = (engine, hashlib.sha256(data).hexdigest())
    if key in _verdicts:
        return _verdicts[key]
    try:
        proc = subprocess.run([sys.executable, "-c", PROBES[engine]], input=data, capture_output=True,
                              timeout=PROBE_TIMEOUT)
        death = killed_by(proc.returncode)
        # exit 0, or a Python error (e.g. the engine is not installed): no crash
        verdict = f"crashed ({death})" if death else None
    except subprocess.TimeoutExpired:
        verdict = f"hung (no answer in {PROBE_TIMEOUT} s)"
    _verdicts[key] = verdict
    return verdict


def check_engine(engine: str, data: bytes, origin: str) -> None:
    """UserError when ``engine`` would take the process down on ``data``."""
    if engine not in PROBES:
        return
    verdict = engine_crash(engine, data)
    if verdict is not None:
        raise UserError(f"{origin}: the {engine} engine {verdict} on this file in a probe process; "
                        "it is malformed (truncated or corrupted?)")
