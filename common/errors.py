"""The one exception type for user errors: the CLI prints it on one line and exits non-zero; `note`
for one-line remarks on stderr about what was done with an input (a wrapper unwrapped, a dtype widened)."""
import sys


def note(message: str) -> None:
    """One line on stderr saying what was done with the user's input; never an error."""
    print(f"resnet-rosetta: note: {message}", file=sys.stderr)


class UserError(Exception):
    """Bad input from the user (file, key, argument); message names what was wrong."""


class Unsupported(Exception):
    """A framework cannot run what was asked on this device (e.g. no bf16 kernels); the message says
    which framework, version and operation. Reported as not run, not as a failure."""


class Terminated(BaseException):
    """SIGTERM, raised by the CLI's handler so that every `finally` (temporary files) runs; a
    BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""
