"""Read and write weights in any supported format, always passing through canonical weights.

    format          extension     native names                 reader needs
    canonical       .safetensors  torchvision (canonical)      safetensors
    torch           .pt / .pth    torchvision state_dict        torch (weights_only=True)
    paddle          .pdparams     classic Paddle ResNet         nothing (restricted unpickler)
    paddle-vision   .pdparams     paddle.vision.models.resnet*  nothing (restricted unpickler)
    flax            .msgpack      params/... + batch_stats/...  flax.serialization
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import Weights, check_weights, load_canonical, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.pdparams import read_pdparams, write_pdparams
from resnet_rosetta.common.spec import ResNetSpec, get_spec

FORMATS = ("canonical", "torch", "paddle", "paddle-vision", "flax")
_BY_EXTENSION = {".safetensors": "canonical", ".pt": "torch", ".pth": "torch", ".pdparams": "paddle",
                 ".msgpack": "flax"}


def format_for_output(path: str | Path, to: str | None = None) -> str:
    """The format to write: from the extension; `to` picks between the two .pdparams flavours."""
    ext = Path(path).suffix.lower()
    if ext not in _BY_EXTENSION:
        raise UserError(f"{path}: unknown extension {ext or '(none)'!r}; expected one of "
                        f"{', '.join(sorted(_BY_EXTENSION))}")
    fmt = _BY_EXTENSION[ext]
    if to is None:
        return fmt
    if to not in FORMATS:
        raise UserError(f"unknown format {to!r}; known: {', '.join(FORMATS)}")
    if fmt == "paddle" and to in ("paddle", "paddle-vision"):
        return to
    if to != fmt:
        raise UserError(f"{path}: --to {to} does not match the extension {ext} (format {fmt})")
    return fmt


def _read_native(path: Path, fmt: str) -> dict[str, np.ndarray]:
    if fmt == "paddle":
        return read_pdparams(path)
    return frameworks.load(fmt, "files").read_native(path)


def read_weights(path: str | Path, arch: str | None = None) -> tuple[Weights, ResNetSpec, str]:
    """(canonical weights, spec, source format) of any supported file, strictly checked.

    The spec comes from the file's header (canonical files), else from `arch` (its num_classes and
    in_channels read off the tensors), else is inferred from keys and shapes when unambiguous.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    fmt = format_for_output(path)
    if fmt == "canonical":
        weights, spec = load_canonical(path)
        native, native_fmt = weights, "torch"  # canonical names are torchvision's
    else:
        spec = None
        native = _read_native(path, fmt)
        native_fmt = rules.detect_paddle_flavour(native) if fmt == "paddle" else fmt
        fmt = native_fmt
    if spec is not None and arch is not None and spec.name != arch:
        raise UserError(f"{path}: checkpoint is {spec.name}, but --arch says {arch}")
    if spec is None:
        spec = _spec_from_arch(native, native_fmt, arch, str(path)) if arch else \
            rules.infer_spec(native, native_fmt, str(path))
    weights = rules.from_native(native, spec, native_fmt, str(path))
    check_weights(weights, spec, str(path))
    return weights, spec, fmt


def _spec_from_arch(native: Mapping[str, np.ndarray], fmt: str, arch: str, source: str) -> ResNetSpec:
    """The named preset, with num_classes and in_channels taken from the file's tensors."""
    spec = rules.fit_to_tensors(get_spec(arch), native, fmt)
    if spec is None:
        raise UserError(f"{source}: not a {arch} checkpoint in {fmt} format (no stem conv or classifier found)")
    return spec


def write_weights(path: str | Path, weights: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str) -> None:
    """Write canonical weights as `fmt`, atomically (a failed write leaves `path` as it was)."""
    check_weights(weights, spec, str(path))
    if fmt == "canonical":
        save_canonical(path, weights, spec)
        return
    native = rules.to_native(weights, spec, fmt)
    if fmt in ("paddle", "paddle-vision"):
        write_pdparams(path, native)
    else:
        frameworks.load(fmt, "files").write_native(path, native)
