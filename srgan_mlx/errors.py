"""The one exception type the command line turns into a one-line message."""


class UserError(Exception):
    """A problem with the user's input (file, folder, option): printed as ``error: <message>``, exit 1."""
