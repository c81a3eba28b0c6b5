"""Keep a native engine's crash on a malformed model file out of the caller's process.

LiteRT and ONNX Runtime verify a model's structure before using it. TFLite Micro's
Python interpreter does not: a bit-flipped ``.tflite`` whose operators name tensors
that do not exist makes ``Interpreter.from_bytes`` segfault (found by tests/test_fuzz.py).
So before TFLM sees a file in this process, a short-lived child process loads it and
invokes it once; if the child dies by a signal or hangs, the file is refused with a
UserError. Answers are cached per file content, so each file costs one probe (~0.2 s)
per process.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys

from edgelstm.errors import UserError

#: Seconds a probe may take: loading and invoking a model takes milliseconds.
PROBE_TIMEOUT = 60
#: Same arena as tflite_info.tflm_error: big enough for any model edgelstm exports.
PROBE_ARENA = 16 << 20

_TFLM_PROBE = f"""
import sys
from tflite_micro.python.tflite_micro import runtime
data = sys.stdin.buffer.read()
try:
    runtime.Interpreter.from_bytes(data, arena_size={PROBE_ARENA}).invoke()
except Exception:
    pass  # an error the engine reports is not a crash: the caller meets it again, as an exception
"""
PROBES = {"tflm": _TFLM_PROBE}

_verdicts: dict[tuple[str, str], str | None] = {}


def engine_crash(engine: str, data: bytes) -> str | None:
    """How ``engine`` fails fatally on the model ``data`` ("crashed with SIGSEGV", "hung"),
    or None when it loads and invokes it, or reports an ordinary error."""
    key = (engine, hashlib.sha256(data).hexdigest())
    if key in _verdicts:
        return _verdicts[key]
    try:
        proc = subprocess.run([sys.executable, "-c", PROBES[engine]], input=data, capture_output=True,
                              timeout=PROBE_TIMEOUT)
        code = proc.returncode
        verdict = None  # exit 0, or a Python error (e.g. the engine is not installed): no crash
        if code < 0:
            try:
                verdict = f"crashed with {signal.Signals(-code).name}"
            except ValueError:
                verdict = f"crashed with signal {-code}"
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
