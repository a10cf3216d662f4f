"""User-facing problems: the exception the command line prints in one line, and one-line warnings."""

import sys


class UserError(Exception):
    """A problem with the user's input (file, folder, option): printed as ``error: <message>``, exit 1."""


def warn(message: str) -> None:
    """One line on stderr (``warnings.warn`` would add a second line of source)."""
    print(f"srgan-mlx: warning: {message}", file=sys.stderr)
