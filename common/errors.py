"""The one exception type for user errors: the CLI prints it on one line and exits non-zero; `note`
for one-line remarks on stderr about what was done with an input (a wrapper unwrapped, a dtype widened)."""

_NOTES: list[str] = []


def note(message: str) -> None:
    """A one-line remark on what was done with the user's input, never an error. Held until the
    command ends: the CLI prints the notes of a command that succeeded (`take_notes`), so a refusal
    stays one line."""
    _NOTES.append(message)


def take_notes() -> list[str]:
    """The notes so far, emptied."""
    notes = list(_NOTES)
    _NOTES.clear()
    return notes


class UserError(Exception):
    """Bad input from the user (file, key, argument); message names what was wrong."""


class Unsupported(Exception):
    """A framework cannot run what was asked on this device (e.g. no bf16 kernels); the message says
    which framework, version and operation. Reported as not run, not as a failure."""


class Terminated(BaseException):
    """SIGTERM, raised by the CLI's handler so that every `finally` (temporary files) runs; a
    BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (at most `limit` characters): what a one-line
    status or note quotes of a framework's own, often multi-line, error."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]


def one_line(text: str) -> str:
    """`text` with every character that would break or hide its line (a newline, vertical tab or other
    control character inside a file's key or value) escaped as Python writes it, so a refusal that
    quotes what a file holds stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
