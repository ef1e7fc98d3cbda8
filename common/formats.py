"""Weight file formats: which format a path is, and native arrays -> canonical weights + spec.

    format          extension     native names                 reader needs
    canonical       .safetensors  torchvision (canonical)      safetensors
    torch           .pt / .pth    torchvision state_dict        torch (weights_only=True)
    paddle          .pdparams     classic Paddle ResNet         nothing (restricted unpickler)
    paddle-vision   .pdparams     paddle.vision.models.resnet*  nothing (restricted unpickler)
    flax            .msgpack      params/... + batch_stats/...  flax.serialization

Format-neutral and pure NumPy; reading and writing native files is each framework's `files.py`,
dispatched by `resnet_rosetta.frameworks.weights`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from . import rules
from .canonical import Weights, check_weights
from .errors import UserError
from .spec import ResNetSpec, get_spec

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


def from_native(native: Mapping[str, np.ndarray], fmt: str, source: str, spec: ResNetSpec | None = None,
                arch: str | None = None) -> tuple[Weights, ResNetSpec, str]:
    """(canonical weights, spec, native format) of a file's arrays, strictly checked.

    The spec is `spec` (a canonical file's header), else the preset `arch` (its num_classes and
    in_channels read off the tensors), else inferred from keys and shapes when unambiguous. A
    .pdparams file is told apart as this suite's Paddle model or paddle.vision's by its keys.
    """
    for key, arr in native.items():
        if 0 in np.shape(arr):
            raise UserError(f"{source}: key {key}: zero-sized tensor of shape {tuple(np.shape(arr))}")
    if fmt == "paddle":
        fmt = rules.detect_paddle_flavour(native, source)
    if spec is not None and arch is not None and spec.name != arch:
        raise UserError(f"{source}: checkpoint is {spec.name}, but --arch says {arch}")
    if spec is None:
        spec = _spec_from_arch(native, fmt, arch, source) if arch else rules.infer_spec(native, fmt, source)
    weights = rules.from_native(native, spec, fmt, source)
    check_weights(weights, spec, source)
    return weights, spec, fmt


def _spec_from_arch(native: Mapping[str, np.ndarray], fmt: str, arch: str, source: str) -> ResNetSpec:
    """The named preset, with num_classes and in_channels taken from the file's tensors."""
    spec = rules.fit_to_tensors(get_spec(arch), native, fmt)
    if spec is None:
        raise UserError(f"{source}: not a {arch} checkpoint in {fmt} format (no stem conv or classifier found)")
    return spec
