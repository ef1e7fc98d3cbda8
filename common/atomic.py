"""Write-to-temp-then-rename, so a failed run never leaves a partial file or clobbers a good one.

The temporary file is removed however the block ends (an exception, Ctrl-C, or SIGTERM, which the CLI
turns into an exception); written files follow the umask. `check_writable` refuses an output path
that cannot be written (a directory, a read-only folder) before any work is done."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

from .errors import UserError


def check_writable(dest: str | os.PathLike[str], what: str = "output") -> None:
    """A UserError now, before any work, if `dest` is a directory or its folder cannot take a new file."""
    dest = Path(dest)
    if dest.is_dir():
        raise UserError(f"{dest}: {what} path is a directory; expected a file name")
    folder = dest.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{dest}: cannot create the {what}: {folder} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{dest}: cannot write the {what} in {folder} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; it replaces `dest` only if the block succeeds."""
    dest = Path(dest)
    if dest.is_dir():
        raise UserError(f"{dest}: output path is a directory; expected a file name")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise UserError(f"{dest}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes files owner-only; results are ordinary files
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EFBIG, errno.EISDIR):
            raise UserError(f"{dest}: cannot write ({exc.strerror})") from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


def save_safetensors(dest: str | os.PathLike[str], tensors: Mapping[str, object], metadata: dict[str, str]) -> None:
    """A safetensors file written through `atomic_path` (the library's own save_file renames its own
    temporary file into place with mode 0600 and leaves it behind when killed)."""
    from safetensors.numpy import save

    atomic_write_bytes(dest, save(dict(tensors), metadata=metadata))  # type: ignore[arg-type]
