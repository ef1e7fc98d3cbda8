"""The one exception type for user errors: the CLI prints it on one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (file, key, argument); message names what was wrong."""
