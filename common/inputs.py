"""Input batches from files: NCHW float32 `.npy`, checked before any framework sees them."""
from __future__ import annotations

import numpy as np

from .errors import UserError


def load_batch(path: str, in_channels: int) -> np.ndarray:
    """An NCHW float32 batch from .npy, refusing pickles, wrong ranks and channel counts."""
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npy array ({exc})") from None
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise UserError(f"{path}: expected an NCHW batch with {in_channels} channels, found shape {x.shape}")
    if x.dtype != np.float32:
        raise UserError(f"{path}: expected dtype float32, found {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: input contains non-finite values")
    return x
