"""What the ``edgelstm`` command line prints besides a command's own report: errors as
one line, warnings and notes on stderr, JSON reports, ``FAIL:`` lines and progress.

Part of the command line (click lives only in ``cli``, ``cli_options`` and here).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from edgelstm.core.errors import UserError
from edgelstm.reports import json_text


class UserFacingError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class Group(click.Group):
    """Turns UserError (and a closed output pipe) into one line, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise UserFacingError(str(exc)) from None
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
            ctx.exit(0)
        except UnicodeDecodeError as exc:
            raise UserFacingError(f"input is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:  # unwritable output, a file where a directory should be, a full disk, ...
            where = f"{exc.filename}: " if exc.filename else ""
            raise UserFacingError(f"{where}{exc.strerror or exc}") from None


def say(message: str) -> None:
    """A progress note on stderr (stdout carries the result)."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def warn_range(summary: dict | None, prefix: str = "") -> None:
    """One stderr line when a quantized model saw inputs outside its calibrated range."""
    from edgelstm.runtime.ranges import range_line

    if summary and (summary["inputs_outside"] or summary["outputs_pinned"]):
        warn(f"{prefix}{range_line(summary)}")


def write_json(path: str, data) -> None:
    """``data`` as strict JSON to ``path`` (``-``: stdout)."""
    if path == "-":
        click.echo(json_text(data), nl=False)
        return
    try:
        Path(path).write_text(json_text(data))
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None


def finish(data: dict, lines: list[str], json_path: str | None, broken: list[str]) -> None:
    """Write the JSON, print the human report (unless the JSON goes to stdout), and exit 1
    with one ``FAIL:`` line when a budget or threshold was broken."""
    if json_path:
        write_json(json_path, data)
    if json_path != "-":
        for line in lines:
            click.echo(line)
    if broken:
        fail("; ".join(broken))


def fail(reason: str) -> None:
    """One ``FAIL:`` line on stderr and exit status 1: a budget or threshold was broken."""
    click.echo(f"FAIL: {reason}", err=True)
    sys.exit(1)


def progress_factory():
    """click.progressbar on a terminal; nothing in logs (CI) where a bar is only noise."""
    if not sys.stderr.isatty():
        return None
    return lambda length, label: click.progressbar(length=length, label=label, file=sys.stderr)


@contextlib.contextmanager
def epoch_progress(label: str, epochs: int):
    """A ``progress(n, item)`` callback for training: a bar on a terminal; in a log (CI,
    a pipe) one line per epoch, where a bar would print nothing until the end."""
    if sys.stderr.isatty():
        with click.progressbar(length=epochs, label=label, file=sys.stderr, item_show_func=lambda s: s) as bar:
            yield bar.update
        return
    done = iter(range(1, epochs + 1))
    say(label)
    yield lambda n, item: say(f"  epoch {next(done)}/{epochs}" + (f"  {item}" if item else ""))
