"""``edgelstm run``: CSV rows in, one output row per timestep out, streaming.

One line is read, stepped and written before the next is read, so memory stays flat
for any input length and rows can arrive on stdin one at a time. ``stream_csv`` streams
one text source; ``run_file`` is the whole command around it: the output file written
atomically, and the state-file session (restore, checkpoints, save, SIGTERM).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from edgelstm.core.metrics import predicted_class
from edgelstm.core.errors import UserError
from edgelstm.runtime import BadInputError, StatefulModel, state_file
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
    delimiter: str | None = None  # taken from the first line
    stream_idx: int | None = None
    last: dict[str, list[str]] = {}
    for line_no, line in enumerate(iter(source.readline, ""), 1):
        text = line.strip()
        if not text:
            continue
        if delimiter is None:
            delimiter, stream_idx, is_header = _first_line(text, line_no, model.input_size, stream_column)
            sink.write(",".join(names) + "\n")
            if is_header:
                continue
        cells = [c.strip() for c in text.split(delimiter)]
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
        out = _answer(stream if stream_idx is not None else None, y, classes)
        if last_only:
            last[stream] = out
        else:
            _write(sink, out, False, flush_each_row)
        if after_row is not None:
            after_row(stats)
    for out in last.values():
        sink.write(",".join(out) + "\n")
    return stats


def _first_line(text: str, line_no: int, input_size: int, stream_column: str | None
                ) -> tuple[str, int | None, bool]:
    """(separator, index of the stream column, whether ``text`` is a header row)."""
    delimiter = detect_delimiter(text)
    cells = [c.strip() for c in text.split(delimiter)]
    # A header names columns: no cell is a number. A row mixing numbers and text
    # is data, and is refused by stream_csv with its line number, never dropped.
    is_header = (stream_column is not None and stream_column in cells) or not any(_is_number(c) for c in cells if c)
    stream_idx = None
    if stream_column is not None:
        if not is_header or stream_column not in cells:
            raise UserError(f"input line {line_no}: --stream-column {stream_column!r} needs a header row naming it"
                            + (f" (header: {','.join(cells)})" if is_header else ""))
        stream_idx = cells.index(stream_column)
    if is_header and len(cells) != input_size + (stream_column is not None):
        raise UserError(f"input line {line_no}: the header has {len(cells)} columns "
                        f"({delimiter!r}-separated), the model takes {input_size} features"
                        + (f" plus {stream_column!r}" if stream_column else "")
                        + "; is the file separated by something else (comma, semicolon, tab)?")
    return delimiter, stream_idx, is_header


def _answer(stream: str | None, y: np.ndarray, classes: bool) -> list[str]:
    """One output row: the stream's name (when there is a stream column), every output
    and, for a classifier, the class."""
    out = ([stream] if stream is not None else []) + [f"{v:.9g}" for v in y]
    if classes:
        out.append(str(int(predicted_class(y))))
    return out


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


# -- a whole `edgelstm run`: files, the state file, SIGTERM ------------------------------

@contextlib.contextmanager
def stopped_by_sigterm():
    """SIGTERM (`systemctl stop`, a reboot) ends the run as Ctrl-C does: through the
    ``finally`` that saves the state file, so a service resumes where it stopped."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_deferred():
    """Hold a SIGTERM back until the block is done (a stop request mid-save would throw
    the save away)."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to defer
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def open_text(path: str, mode: str) -> TextIO:
    """``path`` opened as CSV text; ``-`` is stdin (``r``) or stdout (``w``)."""
    if path == "-":
        return sys.stdin if mode == "r" else sys.stdout
    try:
        return open(path, mode, newline="")
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror.lower() if exc.strerror else exc}") from None


@dataclass
class StateSession:
    """Every stream's state restored from ``path`` (when it exists) and saved back."""
    path: Path
    model: StatefulModel
    router: StreamRouter
    stats: RunStats
    rows_before: int = 0

    def restore(self) -> bool:
        """Load the saved streams into the router; False when there is no file yet."""
        if not self.path.exists():
            return False
        saved = state_file.load(self.path, self.model.state_sizes, self.model.description)
        self.router.states, self.rows_before = saved.streams, saved.rows
        return True

    def save(self) -> None:
        with sigterm_deferred():
            state_file.save(self.path, self.router.states, self.model.state_sizes, self.model.description,
                            self.rows_before + self.stats.rows)


def run_file(artifact: Path, input_path: str = "-", output_path: str = "-", stream_column: str | None = None,
             backend: str = "auto", threads: int | None = None, on_bad_row: str = "error",
             state_path: Path | None = None, checkpoint_every: int | None = None, last_only: bool = False,
             say: Callable[[str], None] = lambda message: None, warn: Callable[[str], None] | None = None
             ) -> tuple[RunStats, dict | None]:
    """Everything ``edgelstm run`` does; returns the row counts and the calibrated-range
    summary (quantized models: inputs the calibration did not cover).

    An output file appears only when the run succeeds (written beside its destination,
    then renamed). With ``state_path``, the state is saved at the end even after an
    error (as of each stream's last good row), every ``checkpoint_every`` rows, and on
    SIGTERM.
    """
    from edgelstm.runtime import load

    files = [] if output_path == "-" else [(output_path, Path(output_path))]
    for given, path in files + ([(state_path, state_path)] if state_path is not None else []):
        if not path.parent.is_dir():  # find out now, not after the stream
            raise UserError(f"{given}: its directory {path.parent} does not exist")
    model = load(artifact, backend=backend, threads=threads, on_range=lambda summary: None)  # said at the end
    router, stats = StreamRouter(model), RunStats()
    session = StateSession(state_path, model, router, stats) if state_path is not None else None
    if session is not None and session.restore():
        say(f"restored {len(router.states)} stream(s) from {state_path} ({session.rows_before} rows seen)")

    def checkpoint(stats):
        if stats.rows % checkpoint_every == 0:
            session.save()

    with stopped_by_sigterm() if session is not None else contextlib.nullcontext():
        _stream_files(model, input_path, output_path, session, stream_column=stream_column, on_bad_row=on_bad_row,
                      flush_each_row=input_path == "-", router=router, stats=stats, last_only=last_only,
                      after_row=checkpoint if session is not None and checkpoint_every else None, warn=warn)
    return stats, model.range_summary()


def _stream_files(model: StatefulModel, input_path: str, output_path: str, session: StateSession | None,
                  **options) -> None:
    src = open_text(input_path, "r")
    # A file output is written beside its destination and renamed into place only when
    # the run succeeds: an error never leaves a partial file that looks complete.
    # (a device or pipe such as /dev/null or a FIFO is written directly)
    direct = output_path == "-" or (Path(output_path).exists() and not Path(output_path).is_file())
    partial = None if direct else str(Path(output_path).with_name(f".{Path(output_path).name}.partial"))
    done = False
    try:
        dst = open_text(partial or output_path, "w")
        try:
            try:
                stream_csv(model, src, dst, **options)
                done = True
            finally:
                # Every stream's state is as of its last good row here, even after a refused
                # row or an engine error: the router only stores a state once its step succeeded.
                if session is not None:
                    session.save()
        finally:
            if dst is sys.stdout:
                dst.flush()
            else:
                dst.close()
                if partial is not None and done:
                    Path(partial).replace(output_path)
                elif partial is not None:
                    Path(partial).unlink(missing_ok=True)
    finally:
        if src is not sys.stdin:
            src.close()
