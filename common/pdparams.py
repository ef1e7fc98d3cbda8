"""Paddle `.pdparams` files without Paddle: a restricted unpickler and a plain writer.

`paddle.save(state_dict)` pickles a dict of NumPy arrays (plus a `StructuredToParameterName@@`
dict of strings). A pickle can name any importable callable, so loading one with `pickle.load` can
run arbitrary code; this reader admits only the few NumPy globals an array needs and refuses
everything else by name, before anything is called.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import UserError

EXTENSION = ".pdparams"
STRUCTURE_KEY = "StructuredToParameterName@@"
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("collections", "OrderedDict"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits NumPy arrays, dtypes and plain containers; any other global is an error."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}: a state dict needs only NumPy arrays")


def read_pdparams(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Tensors of a `.pdparams` state dict as NumPy arrays (the name-structure table is dropped)."""
    path = Path(path)
    try:
        obj = RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: unsafe or corrupt pickle: {exc}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError) as exc:
        raise UserError(f"{path}: truncated or corrupt .pdparams ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a state dict (name -> array), found {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if k != STRUCTURE_KEY}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise UserError(f"{path}: key {key!r}: expected a string key, found {type(key).__name__}")
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise UserError(f"{path}: key {key}: expected a numeric array, found {type(value).__name__}")
    return tensors


def write_pdparams(path: str | os.PathLike[str], native: dict[str, np.ndarray]) -> None:
    """A dict of NumPy arrays pickled as `paddle.save` does; `paddle.load` and `set_state_dict` accept it."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump({k: np.ascontiguousarray(v) for k, v in native.items()}, f, protocol=4)
