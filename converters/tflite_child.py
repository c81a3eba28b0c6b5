"""The TFLite conversion child process: ``python -m edgelstm.converters.tflite_child DIR``.

Reads the job ``convert_in_child`` wrote into DIR, converts, and writes
``DIR/model.tflite`` and the description embedded in it, ``DIR/description.json`` (or
``DIR/error.txt`` with one line for a user-facing failure).
A crash here kills only this process; the parent reports it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgelstm.converters import tflite
    from edgelstm.core.errors import UserError

    tmp = Path(argv[0])
    try:
        spec, job, samples = tflite.load_job(tmp)
        data, desc = tflite.build(spec, job["quantize"], job["mode"], job["seq_len"], samples,
                                  job.get("calibration"))
    except UserError as exc:
        (tmp / "error.txt").write_text(str(exc) + "\n")
        return 1
    (tmp / tflite.CHILD_MODEL).write_bytes(data)
    part = tmp / (tflite.CHILD_DESCRIPTION + ".part")
    part.write_text(json.dumps(desc))
    part.replace(tmp / tflite.CHILD_DESCRIPTION)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
