"""The project's error types: what the console scripts report as one line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, files or environment: reported as one line, exit status 1.

    Library code raises a subclass (which also keeps a builtin base such as
    `ValueError` or `OSError` for callers that catch those); anything else that
    escapes a command is a bug and keeps its traceback.
    """


class MissingExtraError(UserError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""
