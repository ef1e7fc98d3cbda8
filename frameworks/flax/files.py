"""Flax native checkpoints: `.msgpack` from `flax.serialization` of `{params, batch_stats}`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from flax import serialization, traverse_util

from resnet_rosetta.common.atomic import atomic_write_bytes
from resnet_rosetta.common.errors import UserError

EXTENSIONS = (".msgpack",)


def flatten(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Nested variable tree -> flat dict keyed by "/" paths (`params/conv1/kernel`)."""
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(dict(variables), sep="/").items()}


def unflatten(native: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return traverse_util.unflatten_dict(dict(native), sep="/")


def read_native(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except Exception as exc:  # msgpack raises several unrelated types for truncated data
        raise UserError(f"{path}: truncated or corrupt .msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a {{params, batch_stats}} tree, found {type(tree).__name__}")
    _check_keys(tree, path, "")
    flat = flatten(tree)
    for key, value in flat.items():
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise UserError(f"{path}: key {key}: expected a numeric array, found {type(value).__name__}")
    return flat


def _check_keys(tree: Mapping[Any, Any], path: Path, where: str) -> None:
    """Every key of the nested tree a string (flax paths are strings); names the first that is not."""
    for key, value in tree.items():
        if not isinstance(key, str):
            raise UserError(f"{path}: key {where}{key!r}: expected a string key, found {type(key).__name__}")
        if isinstance(value, dict):
            _check_keys(value, path, f"{where}{key}/")


def write_native(path: str | os.PathLike[str], native: Mapping[str, np.ndarray]) -> None:
    atomic_write_bytes(path, serialization.msgpack_serialize(unflatten(native)))
