"""Canonical weights: torchvision key names and layouts, stored as safetensors with the spec inside.

Conv weights are OIHW, the classifier is `fc.weight [out, in]` + `fc.bias`, batch norm is
`weight, bias, running_mean, running_var`. `num_batches_tracked` is not part of the canonical
schema: it is a PyTorch-only counter that no other framework keeps (the torch converter writes
zeros when it produces a torchvision state_dict).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .atomic import atomic_path
from .errors import UserError
from .spec import ResNetSpec, block_plan, stem_geometry

FORMAT_NAME = "resnet-rosetta-canonical"
FORMAT_VERSION = "1"
SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
BN_LEAVES = ("weight", "bias", "running_mean", "running_var")

Weights = dict[str, np.ndarray]


def canonical_modules(spec: ResNetSpec) -> list[tuple[str, str, tuple[int, ...]]]:
    """(module path, kind, weight shape) for every conv, bn and fc module, in execution order.

    kind is "conv", "bn" or "fc"; for bn the shape is (channels,).
    """
    k = stem_geometry(spec)[0]
    mods: list[tuple[str, str, tuple[int, ...]]] = [
        ("conv1", "conv", (spec.stem_width, spec.in_channels, k, k)),
        ("bn1", "bn", (spec.stem_width,)),
    ]
    for b in block_plan(spec):
        p = b.prefix
        if spec.block == "basic":
            mods += [(f"{p}.conv1", "conv", (b.mid_channels, b.in_channels, 3, 3)),
                     (f"{p}.bn1", "bn", (b.mid_channels,)),
                     (f"{p}.conv2", "conv", (b.out_channels, b.mid_channels, 3, 3)),
                     (f"{p}.bn2", "bn", (b.out_channels,))]
        else:
            mods += [(f"{p}.conv1", "conv", (b.mid_channels, b.in_channels, 1, 1)),
                     (f"{p}.bn1", "bn", (b.mid_channels,)),
                     (f"{p}.conv2", "conv", (b.mid_channels, b.mid_channels // spec.groups, 3, 3)),
                     (f"{p}.bn2", "bn", (b.mid_channels,)),
                     (f"{p}.conv3", "conv", (b.out_channels, b.mid_channels, 1, 1)),
                     (f"{p}.bn3", "bn", (b.out_channels,))]
        if b.downsample:
            mods += [(f"{p}.downsample.0", "conv", (b.out_channels, b.in_channels, 1, 1)),
                     (f"{p}.downsample.1", "bn", (b.out_channels,))]
    mods.append(("fc", "fc", (spec.num_classes, spec.feature_dim)))
    return mods


def relu_sites(spec: ResNetSpec) -> list[str]:
    """Every ReLU of `spec`, in execution order, named by the canonical module whose output it
    gates: the batch norms followed by a ReLU (`bn1`, `layerS.I.bn1`, and `layerS.I.bn2` in a
    bottleneck) and each block (`layerS.I`), whose output is the ReLU of the residual sum."""
    inner = ("bn1",) if spec.block == "basic" else ("bn1", "bn2")
    sites = ["bn1"]
    for b in block_plan(spec):
        sites += [f"{b.prefix}.{bn}" for bn in inner] + [b.prefix]
    return sites


def canonical_shapes(spec: ResNetSpec) -> dict[str, tuple[int, ...]]:
    """Every canonical key and its shape, in execution order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path, kind, shape in canonical_modules(spec):
        if kind == "conv":
            shapes[f"{path}.weight"] = shape
        elif kind == "bn":
            for leaf in BN_LEAVES:
                shapes[f"{path}.{leaf}"] = shape
        else:
            shapes[f"{path}.weight"] = shape
            shapes[f"{path}.bias"] = (shape[0],)
    return shapes


def is_buffer(key: str) -> bool:
    """Running statistics are state, not trainable parameters."""
    return key.endswith(("running_mean", "running_var"))


def check_weights(weights: Mapping[str, np.ndarray], spec: ResNetSpec, source: str) -> None:
    """Strict check against the spec: names every missing, unexpected or misshapen key."""
    expected = canonical_shapes(spec)
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys {few_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {few_keys(unexpected)}")
    for key, shape in expected.items():
        if key in weights and tuple(weights[key].shape) != shape:
            problems.append(f"key {key}: expected shape {shape}, found {tuple(weights[key].shape)}")
            break
    if problems:
        raise UserError(f"{source}: does not match {spec.name}: " + "; ".join(problems))
    for key, arr in weights.items():
        if arr.dtype not in SUPPORTED_DTYPES:
            raise UserError(f"{source}: key {key}: unsupported dtype {arr.dtype} "
                            f"(expected one of {', '.join(str(d) for d in SUPPORTED_DTYPES)})")
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{source}: key {key}: contains non-finite values (NaN or Inf)")


def few_keys(keys: list[str], limit: int = 4) -> str:
    """The first few keys of a long list, and how many more there are."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def save_canonical(path: str | os.PathLike[str], weights: Mapping[str, np.ndarray], spec: ResNetSpec) -> None:
    """Write a canonical safetensors file atomically, spec and format version in the header."""
    from safetensors.numpy import save_file

    check_weights(weights, spec, str(path))
    ordered = {k: np.ascontiguousarray(weights[k]) for k in canonical_shapes(spec)}
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "spec": spec.to_json()}
    with atomic_path(path) as tmp:
        save_file(ordered, str(tmp), metadata=meta)


def read_safetensors(path: Path, what: str = "safetensors file") -> tuple[Weights, dict[str, str]]:
    """(tensors, header metadata) of a safetensors file; a damaged one is a user error naming `what`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a readable {what} ({_one_line(exc)})") from None


def load_canonical(path: str | os.PathLike[str]) -> tuple[Weights, ResNetSpec | None]:
    """Read a safetensors file; returns the tensors and the spec from its header, if it carries one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    weights, meta = read_safetensors(path)
    version = meta.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise UserError(f"{path}: canonical format version {version} is not supported (expected {FORMAT_VERSION})")
    spec = ResNetSpec.from_json(meta["spec"]) if "spec" in meta else None
    return weights, spec


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def random_weights(spec: ResNetSpec, seed: int = 0, dtype: np.dtype = np.float32) -> Weights:
    """Seeded weights with non-trivial BN statistics (never identity), for parity runs and tests.

    Conv weights are He-normal; BN scale, shift, mean and variance are random around 1 / 0 so
    that an eval-mode forward exercises every BN term and a skipped or misnamed tensor shows.
    """
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for key, shape in canonical_shapes(spec).items():
        if key.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or (key.endswith("bias") and not key.startswith("fc")):
            arr = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1 and not key.startswith("fc"):  # BN scale
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.startswith("fc"):
            bound = 1.0 / np.sqrt(spec.feature_dim)
            arr = rng.uniform(-bound, bound, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            arr = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        out[key] = arr.astype(dtype)
    return out

