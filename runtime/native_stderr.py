"""Keeping native libraries' start-up chatter off the user's stderr, and nothing else.

TensorFlow writes absl / oneDNN / CPU-feature lines straight to file descriptor 2 when
it is imported (``TF_CPP_MIN_LOG_LEVEL`` no longer stops all of them), and LiteRT
announces ``INFO: Created TensorFlow Lite XNNPACK delegate`` for every interpreter: a
one-line ``error: ...`` became five lines. Python-level filters cannot see writes to the
descriptor, so ``quiet_native_stderr`` points descriptor 2 at a temporary file around
such a call, then writes back every line that is not one of the known, informational
ones below. Warnings and errors (``E``/``F``/``W`` log lines, tracebacks, anything
unknown) still reach the user, in order.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

#: Informational start-up lines of TensorFlow and LiteRT (one regex per line kind).
NOISE = tuple(re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^I\d{4} [\d:.]+\s+\d+ port\.cc:\d+\] oneDNN custom operations are on",
    r"^I\d{4} [\d:.]+\s+\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* in other operations, rebuild TensorFlow",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
))


def is_noise(line: str) -> bool:
    return any(p.search(line.rstrip("\r\n")) for p in NOISE)


@contextmanager
def quiet_native_stderr():
    """Drop the known start-up lines native code writes to fd 2 inside the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr descriptor: leave it alone
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))
            if kept:
                os.write(2, kept.encode("utf-8"))
