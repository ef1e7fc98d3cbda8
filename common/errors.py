"""The one exception type for user errors: the CLI prints it on one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (file, key, argument); message names what was wrong."""


class Unsupported(Exception):
    """A framework cannot run what was asked on this device (e.g. no bf16 kernels); the message says
    which framework, version and operation. Reported as not run, not as a failure."""
