"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """A problem with the user's input (file, model, data, options): not a bug."""


class MissingExtraError(UserError):
    """A command needs a package that the installed extra does not provide."""

    def __init__(self, package: str, extra: str, what: str = "this command"):
        super().__init__(
            f"{what} needs {package}, which is not installed: pip install \"edgelstm[{extra}]\""
        )
