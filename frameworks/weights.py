"""Read, write and convert weights in any supported format (see common/formats.py), always through
canonical weights; native files are read and written by `frameworks/<fw>/files.py`, loaded by name
so that only the framework a format needs is imported. A Hugging Face folder (common/hf.py) needs none."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from resnet_rosetta.common import formats, hf, rules
from resnet_rosetta.common.atomic import check_writable
from resnet_rosetta.common.canonical import Weights, check_weights, load_canonical, load_labels, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec
from . import load

# format -> the package whose files.py reads and writes it; timm's .pth is a torch state dict
_FILES = {"torch": "torch", "timm": "torch", "paddle": "paddle", "paddle-vision": "paddle", "paddleclas": "paddle",
          "flax": "flax"}
_RULES = {"timm": "torch"}  # timm's names are torchvision's, and timm's ResNet-D names are canonical


@dataclass(frozen=True)
class Checkpoint:
    """Canonical weights, their spec, the source's format and its class names (when it has them)."""

    weights: Weights
    spec: ResNetSpec
    fmt: str
    labels: list[str] | None = None


def read_checkpoint(path: str | Path, arch: str | None = None) -> Checkpoint:
    """Any supported file or Hugging Face folder, strictly checked; the format from extension and keys."""
    path = Path(path)
    if path.is_dir():
        native, spec, labels = hf.read_folder(path)
        weights, spec, fmt = formats.from_native(native, "hf", str(path), spec, arch)
        return Checkpoint(weights, spec, fmt, labels)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    fmt = formats.format_for_output(path)
    if fmt == "canonical":
        stored, header_spec = load_canonical(path)  # canonical names are torchvision's (a bare file: timm's or HF's)
        weights, spec, fmt = formats.from_native(stored, "torch", str(path), header_spec, arch)
        return Checkpoint(weights, spec, "canonical" if header_spec else fmt, load_labels(path))
    native = load(_FILES[fmt], "files").read_native(path)
    return Checkpoint(*formats.from_native(native, fmt, str(path), arch=arch))


def read_weights(path: str | Path, arch: str | None = None) -> tuple[Weights, ResNetSpec, str]:
    """(canonical weights, spec, source format) of any supported file, strictly checked."""
    c = read_checkpoint(path, arch)
    return c.weights, c.spec, c.fmt


def write_weights(path: str | Path, weights: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str,
                  labels: list[str] | None = None, overwrite: bool = False) -> None:
    """Write canonical weights as `fmt`, atomically (a failed write leaves `path` as it was)."""
    check_weights(weights, spec, str(path))
    formats.check_peer_can_build(spec, fmt, str(path))
    if fmt == "canonical":
        save_canonical(path, weights, spec, labels)
    elif fmt == "hf":
        hf.write_folder(path, rules.to_native(weights, spec, "hf"), hf.config_for(spec, labels), overwrite)
    else:
        load(_FILES[fmt], "files").write_native(path, rules.to_native(weights, spec, _RULES.get(fmt, fmt)))


def convert(src: str | Path, dst: str | Path, arch: str | None = None, to: str | None = None,
            overwrite: bool = False) -> str:
    """SRC in any format -> DST in the format its extension (and `to`) names; a one-line summary."""
    fmt = formats.format_for_output(dst, to)
    if fmt == "hf":
        hf.check_folder(dst, overwrite)
    else:
        check_writable(dst)
    c = read_checkpoint(src, arch)
    write_weights(dst, c.weights, c.spec, fmt, c.labels, overwrite)
    return f"{src} ({c.fmt}) -> {dst} ({fmt}): {c.spec.name}, {len(c.weights)} tensors"
