"""Weight file formats: which format a path is, and native arrays -> canonical weights + spec.

    format          extension     native names                 reader needs
    canonical       .safetensors  torchvision (canonical)      safetensors
    torch           .pt / .pth    torchvision state_dict        torch (weights_only=True)
    paddle          .pdparams     classic Paddle ResNet         nothing (restricted unpickler)
    paddle-vision   .pdparams     paddle.vision.models.resnet*  nothing (restricted unpickler)
    flax            .msgpack      params/... + batch_stats/...  flax.serialization
    timm            .pth / .safetensors  torchvision's; timm's for ResNet-D (= canonical)   torch / safetensors
    hf              a folder (config.json + model.safetensors) or its .safetensors   safetensors
    paddleclas      .pdparams     PaddleClas (stem.N, blocks.N, short, fc)  nothing (restricted unpickler)

A file's format is told by its extension, then by its keys (Hugging Face's `resnet.embedder.`,
PaddleClas' `stem.0.conv.`), never by a flag; `--to` only chooses what to write.

Format-neutral and pure NumPy; reading and writing native files is each framework's `files.py`,
dispatched by `resnet_rosetta.frameworks.weights`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from . import inference, rules
from .canonical import Weights, check_weights
from .errors import UserError
from .spec import ResNetSpec, get_spec

FORMATS = ("canonical", "torch", "paddle", "paddle-vision", "flax", "timm", "hf", "paddleclas")
# --to NAME -> the formats an extension takes: timm's .pth is a torch state dict, its .safetensors a
# canonical file (timm's names are canonical); Hugging Face's output is a folder, whatever its name
_SAME_FILE = {"paddle": ("paddle", "paddle-vision", "paddleclas"), "torch": ("torch", "timm"),
              "canonical": ("canonical", "timm")}
HF_PREFIX = "resnet.embedder."  # Hugging Face's keys, in a bare model.safetensors too
_BY_EXTENSION = {".safetensors": "canonical", ".pt": "torch", ".pth": "torch", ".pdparams": "paddle",
                 ".msgpack": "flax"}


def format_for_output(path: str | Path, to: str | None = None) -> str:
    """The format to write: from the extension; `to` picks among the formats one extension holds
    (.pdparams: paddle, paddle-vision, paddleclas; .pth: torch, timm) or names a Hugging Face folder."""
    if to is not None and to not in FORMATS:
        raise UserError(f"unknown format {to!r}; known: {', '.join(FORMATS)}")
    if to == "hf":
        return "hf"
    ext = Path(path).suffix.lower()
    if ext not in _BY_EXTENSION:
        raise UserError(f"{path}: unknown extension {ext or '(none)'!r}; expected one of "
                        f"{', '.join(sorted(_BY_EXTENSION))} (or --to hf for a Hugging Face folder)")
    fmt = _BY_EXTENSION[ext]
    if to is None:
        return fmt
    if to in _SAME_FILE.get(fmt, ()):
        return "canonical" if fmt == "canonical" else to
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
    elif fmt == "torch" and any(str(k).startswith(HF_PREFIX) for k in native):
        fmt = "hf"
    if spec is not None and arch is not None and spec.name != arch:
        raise UserError(f"{source}: checkpoint is {spec.name}, but --arch says {arch}")
    if spec is None:
        spec = _spec_from_arch(native, fmt, arch, source) if arch else inference.infer_spec(native, fmt, source)
    weights = rules.from_native(native, spec, fmt, source)
    check_weights(weights, spec, source)
    return weights, spec, fmt


def check_peer_can_build(spec: ResNetSpec, fmt: str, dest: str) -> None:
    """Refuse, before writing, a spec the peer's own model class cannot be built as (PaddleClas' ResNet
    has fixed widths 64-128-256-512, four stages, a 64-wide stem and ties the deep stem to the pooled
    shortcut; Hugging Face's limits are in its rules). timm builds every layout."""
    if fmt == "hf":
        rules.key_map(spec, fmt)
    if fmt != "paddleclas":
        return
    vd = spec.stem == "deep" and spec.downsample == "avg"
    vb = spec.stem == "imagenet" and spec.downsample == "conv"
    if not (vd or vb) or spec.widths != (64, 128, 256, 512) or spec.stem_width != 64 or spec.groups != 1 \
            or spec.width_per_group != 64:
        raise UserError(f"{dest}: PaddleClas' ResNet cannot hold {spec.name} (it has widths 64-128-256-512, a "
                        "64-wide 7x7 stem with 1x1-conv shortcuts or the vd deep stem with pooled ones, groups=1)")


def _spec_from_arch(native: Mapping[str, np.ndarray], fmt: str, arch: str, source: str) -> ResNetSpec:
    """The named preset, with num_classes and in_channels taken from the file's tensors."""
    spec = rules.fit_to_tensors(get_spec(arch), native, fmt)
    if spec is None:
        raise UserError(f"{source}: not a {arch} checkpoint in {fmt} format (no stem conv or classifier found)")
    return spec
