"""Read, write and convert weights in any supported format (see common/formats.py), always through
canonical weights; native files are read and written by `frameworks/<fw>/files.py`, loaded by name
so that only the framework a format needs is imported."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from resnet_rosetta.common import formats, rules
from resnet_rosetta.common.atomic import check_writable
from resnet_rosetta.common.canonical import Weights, check_weights, load_canonical, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec
from . import load

_FILES = {"torch": "torch", "paddle": "paddle", "paddle-vision": "paddle", "flax": "flax"}  # format -> package


def read_weights(path: str | Path, arch: str | None = None) -> tuple[Weights, ResNetSpec, str]:
    """(canonical weights, spec, source format) of any supported file, strictly checked."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    fmt = formats.format_for_output(path)
    if fmt == "canonical":
        stored, header_spec = load_canonical(path)  # canonical names are torchvision's
        weights, spec, _ = formats.from_native(stored, "torch", str(path), header_spec, arch)
        return weights, spec, fmt
    native = load(_FILES[fmt], "files").read_native(path)
    return formats.from_native(native, fmt, str(path), arch=arch)


def write_weights(path: str | Path, weights: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str) -> None:
    """Write canonical weights as `fmt`, atomically (a failed write leaves `path` as it was)."""
    check_weights(weights, spec, str(path))
    if fmt == "canonical":
        save_canonical(path, weights, spec)
    else:
        load(_FILES[fmt], "files").write_native(path, rules.to_native(weights, spec, fmt))


def convert(src: str | Path, dst: str | Path, arch: str | None = None, to: str | None = None) -> str:
    """SRC in any format -> DST in the format its extension (and `to`) names; a one-line summary."""
    fmt = formats.format_for_output(dst, to)
    check_writable(dst)
    weights, spec, src_fmt = read_weights(src, arch)
    write_weights(dst, weights, spec, fmt)
    return f"{src} ({src_fmt}) -> {dst} ({fmt}): {spec.name}, {len(weights)} tensors"
