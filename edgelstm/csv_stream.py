"""``edgelstm run``: CSV rows in, one output row per timestep out, streaming.

One line is read, stepped and written before the next is read, so memory stays flat
for any input length and rows can arrive on stdin one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, TextIO

import numpy as np

from edgelstm.errors import UserError
from edgelstm.runtime import BadInputError, StatefulModel
from edgelstm.runtime.streams import StreamRouter

DEFAULT_STREAM = ""
FLOAT32_MAX = float(np.finfo(np.float32).max)


class BadRowError(UserError):
    """A row was refused; carries its line number."""

    def __init__(self, line: int, why: str):
        super().__init__(f"input line {line}: {why}")
        self.line = line


@dataclass
class RunStats:
    rows: int = 0
    skipped: int = 0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def output_header(model: StatefulModel, stream_column: str | None) -> list[str]:
    desc = model.description
    names = desc.get("class_names") or [str(i) for i in range(model.output_size)]
    if desc.get("task") == "classification" and len(names) == model.output_size and model.output_size > 1:
        cols = [f"p_{n}" for n in names] + ["class"]
    else:
        cols = [f"y{i}" for i in range(model.output_size)]
    return ([stream_column] if stream_column else []) + cols


def stream_csv(model: StatefulModel, source: TextIO, sink: TextIO, stream_column: str | None = None,
               on_bad_row: str = "error", flush_each_row: bool = False,
               warn: Callable[[str], None] | None = None, router: StreamRouter | None = None,
               after_row: Callable[[RunStats], None] | None = None, stats: RunStats | None = None) -> RunStats:
    """Stream ``source`` CSV rows through ``model`` and write outputs to ``sink``.

    A header row is optional unless ``stream_column`` is given (it names a column).
    ``on_bad_row``: "error" raises BadRowError (state as of the last good row), "skip"
    calls ``warn`` and leaves every stream's state unchanged.
    """
    router = router or StreamRouter(model)
    stats = stats if stats is not None else RunStats()  # the caller's, so it survives an exception
    names = output_header(model, stream_column)
    classes = names[-1] == "class"
    stream_idx: int | None = None
    header_done = False
    for line_no, line in enumerate(iter(source.readline, ""), 1):
        text = line.strip()
        if not text:
            continue
        cells = [c.strip() for c in text.split(",")]
        if not header_done:
            header_done = True
            # A header names columns: no cell is a number. A row mixing numbers and text
            # is data, and is refused below with its line number, never dropped.
            is_header = (stream_column is not None and stream_column in cells) or not any(
                _is_number(c) for c in cells if c)
            if stream_column is not None:
                if not is_header or stream_column not in cells:
                    raise UserError(
                        f"input line {line_no}: --stream-column {stream_column!r} needs a header row naming it"
                        + (f" (header: {','.join(cells)})" if is_header else ""))
                stream_idx = cells.index(stream_column)
            sink.write(",".join(names) + "\n")
            if is_header:
                continue
        stream = DEFAULT_STREAM
        if stream_idx is not None:
            if len(cells) <= stream_idx:
                why = f"{len(cells)} columns, no {stream_column!r} value"
                if _bad(on_bad_row, line_no, why, warn, stats):
                    continue
            stream = cells.pop(stream_idx)
        try:
            x = _parse(cells, model.input_size)
            y = router.step(stream, x)
        except BadInputError as exc:
            if _bad(on_bad_row, line_no, str(exc), warn, stats):
                continue
        stats.rows += 1
        out = ([stream] if stream_idx is not None else []) + [f"{v:.9g}" for v in y]
        if classes:
            out.append(str(int(np.argmax(y))))
        sink.write(",".join(out) + "\n")
        if flush_each_row:
            sink.flush()
        if after_row is not None:
            after_row(stats)
    return stats


def _parse(cells: list[str], width: int) -> np.ndarray:
    if len(cells) != width:
        raise BadInputError(f"{len(cells)} values, the model takes {width}")
    values = []
    for c in cells:
        try:
            v = float(c)
        except ValueError:
            raise BadInputError(f"{c!r} is not a number") from None
        if not math.isfinite(v):
            raise BadInputError(f"{c!r} is not a finite number")
        if abs(v) > FLOAT32_MAX:  # would become inf in the model's float32
            raise BadInputError(f"{c!r} is beyond the float32 range")
        values.append(v)
    return np.asarray(values, np.float32)


def _bad(mode: str, line_no: int, why: str, warn, stats: RunStats) -> bool:
    """Handle a refused row: True to skip it, or raise BadRowError."""
    if mode != "skip":
        raise BadRowError(line_no, why)
    stats.skipped += 1
    if warn is not None:
        warn(f"input line {line_no}: skipped ({why})")
    return True
