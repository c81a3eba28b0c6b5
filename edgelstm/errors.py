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
