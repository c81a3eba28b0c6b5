"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (file, model, data, options): not a bug."""


class MissingExtraError(UserError):
    """A command needs a package that the installed extra does not provide."""

    def __init__(self, package: str, extra: str, what: str = "this command"):
        super().__init__(
            f"{what} needs {package}, which is not installed: pip install \"edgelstm[{extra}]\""
        )


def require_file(path) -> Path:
    """``path`` as a Path if it names an existing regular file, else UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    return path


def one_line(exc: BaseException, limit: int = 240, with_type: bool = False) -> str:
    """An exception's message folded onto one short line (for `error: ...` messages).

    ``with_type`` names the exception class too: for failures that are not the user's
    own words (an engine's or a parser's), where the type says what went wrong.
    """
    text = " ".join(str(exc).split())[:limit]
    if with_type or not text:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text
