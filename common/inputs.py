"""Input batches from files: NCHW float32 `.npy`, checked before any framework sees them.

The header is read first, so a file that claims more data than it holds (a truncated `.npy` with a
huge shape) is refused before any memory is allocated for it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError


def load_batch(path: str, in_channels: int) -> np.ndarray:
    """An NCHW float32 batch from .npy, refusing pickles, wrong ranks, channel counts and empty batches."""
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise UserError(f"{path}: expected a .npy array (one NCHW batch), found extension {p.suffix or '(none)'!r}")
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    shape, dtype = _npy_header(p)
    if len(shape) != 4 or shape[1] != in_channels:
        raise UserError(f"{path}: expected an NCHW batch with {in_channels} channels, found shape {shape}")
    if 0 in shape:
        raise UserError(f"{path}: expected a non-empty batch (every dimension >= 1), found shape {shape}")
    if dtype != np.float32:
        raise UserError(f"{path}: expected dtype float32, found {dtype}")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npy array ({exc})") from None
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: input contains non-finite values")
    return x


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, checked against the file's size."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=100_000)
            data_bytes = path.stat().st_size - f.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise UserError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())})") from None
    if dtype.hasobject:
        raise UserError(f"{path}: holds Python objects (a pickle); expected a float32 array")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > data_bytes:
        raise UserError(f"{path}: truncated: shape {shape} of {dtype} needs {need} bytes, the file holds {data_bytes}")
    return tuple(int(s) for s in shape), dtype
