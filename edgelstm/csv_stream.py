"""``edgelstm run``: CSV rows in, one output row per timestep out, streaming.

One line is read, stepped and written before the next is read, so memory stays flat
for any input length and rows can arrive on stdin one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, TextIO

import numpy as np

from edgelstm.accuracy import predicted_class
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


#: Field separators recognised in the first line (comma first: it wins a tie).
DELIMITERS = (",", ";", "\t")


def detect_delimiter(line: str) -> str:
    """The separator of a CSV line: the most frequent of comma, semicolon and tab
    (a semicolon- or tab-separated file would otherwise read as one text column)."""
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def stream_csv(model: StatefulModel, source: TextIO, sink: TextIO, stream_column: str | None = None,
               on_bad_row: str = "error", flush_each_row: bool = False,
               warn: Callable[[str], None] | None = None, router: StreamRouter | None = None,
               after_row: Callable[[RunStats], None] | None = None, stats: RunStats | None = None,
               last_only: bool = False) -> RunStats:
    """Stream ``source`` CSV rows through ``model`` and write outputs to ``sink``.

    A header row is optional unless ``stream_column`` is given (it names a column); a
    header must have one column per feature (plus the stream column). The separator is
    taken from the first line (comma, semicolon or tab). ``on_bad_row``: "error" raises
    BadRowError (state as of the last good row), "skip" calls ``warn``, leaves every
    stream's state unchanged and writes an output row with empty values, so output row
    k always answers input row k. ``last_only``: write only each stream's last output,
    at the end (what a windowed model such as the seed example is asked for).
    """
    router = router or StreamRouter(model)
    stats = stats if stats is not None else RunStats()  # the caller's, so it survives an exception
    names = output_header(model, stream_column)
    classes = names[-1] == "class"
    stream_idx: int | None = None
    header_done = False
    delimiter = ","
    last: dict[str, list[str]] = {}
    width = model.input_size + (stream_column is not None)
    for line_no, line in enumerate(iter(source.readline, ""), 1):
        text = line.strip()
        if not text:
            continue
        if not header_done:
            delimiter = detect_delimiter(text)
        cells = [c.strip() for c in text.split(delimiter)]
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
            if is_header and len(cells) != width:
                raise UserError(f"input line {line_no}: the header has {len(cells)} columns "
                                f"({delimiter!r}-separated), the model takes {model.input_size} features"
                                + (f" plus {stream_column!r}" if stream_column else "")
                                + "; is the file separated by something else (comma, semicolon, tab)?")
            sink.write(",".join(names) + "\n")
            if is_header:
                continue
        stream = DEFAULT_STREAM
        if stream_idx is not None:
            if len(cells) <= stream_idx:
                why = f"{len(cells)} columns, no {stream_column!r} value"
                if _bad(on_bad_row, line_no, why, warn, stats):
                    _write(sink, [""] * len(names), last_only, flush_each_row)
                    continue
            stream = cells.pop(stream_idx)
        try:
            x = _parse(cells, model.input_size)
            y = router.step(stream, x)
        except BadInputError as exc:
            if _bad(on_bad_row, line_no, str(exc), warn, stats):
                empty = ([stream] if stream_idx is not None else []) + [""] * (len(names) - (stream_idx is not None))
                _write(sink, empty, last_only, flush_each_row)
                continue
        stats.rows += 1
        out = ([stream] if stream_idx is not None else []) + [f"{v:.9g}" for v in y]
        if classes:
            out.append(str(int(predicted_class(y))))
        if last_only:
            last[stream] = out
        else:
            _write(sink, out, False, flush_each_row)
        if after_row is not None:
            after_row(stats)
    for out in last.values():
        sink.write(",".join(out) + "\n")
    return stats


def _write(sink: TextIO, cells: list[str], last_only: bool, flush: bool) -> None:
    if last_only:  # a skipped row has no output of its own to keep aligned
        return
    sink.write(",".join(cells) + "\n")
    if flush:
        sink.flush()


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
