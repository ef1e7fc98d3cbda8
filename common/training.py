"""What every framework's trainer shares: the same initial weights, drawn once in NumPy (torchvision's
distributions, like `canonical.random_weights` a fact about canonical weights), and the mapping of
per-parameter arrays (gradients, momentum buffers) between native and canonical names, which
`frameworks/<fw>/training.py` import. The loop, checkpoints and metrics are the `training` package's.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from . import rules
from .canonical import Weights, canonical_shapes, few_keys, is_buffer
from .errors import UserError
from .spec import ResNetSpec


# ---------------------------------------------------------------- initial weights

def initial_weights(spec: ResNetSpec, seed: int) -> Weights:
    """Fresh float32 weights drawn once in NumPy, so every framework starts from the same point.

    The distributions are torchvision's: convs Kaiming-normal (fan_out, gain sqrt 2), BN scale 1
    (0 on the last BN of each residual branch with `zero_init_residual`) and shift 0, running
    mean 0 and variance 1, fc weight and bias uniform in +-1/sqrt(fan_in) (torch.nn.Linear).
    """
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(spec.feature_dim)
    last_bn = "bn3" if spec.block == "bottleneck" else "bn2"
    out: Weights = {}
    for key, shape in canonical_shapes(spec).items():
        module, leaf = key.rsplit(".", 1)
        if key.startswith("fc."):
            arr = rng.uniform(-bound, bound, shape)
        elif len(shape) == 4:
            arr = rng.normal(0.0, np.sqrt(2.0 / (shape[0] * shape[2] * shape[3])), shape)
        elif leaf == "weight":
            zero = spec.zero_init_residual and module.startswith("layer") and module.endswith(last_bn)
            arr = np.zeros(shape) if zero else np.ones(shape)
        elif leaf == "running_var":
            arr = np.ones(shape)
        else:  # BN bias, running_mean
            arr = np.zeros(shape)
        out[key] = arr.astype(np.float32)
    return out


# ---------------------------------------------------------------- trainable parameters by name

def trainable_keys(spec: ResNetSpec) -> list[str]:
    """Canonical names of every trainable parameter (running statistics excluded), in execution order."""
    return [k for k in canonical_shapes(spec) if not is_buffer(k)]


def params_to_canonical(native: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str) -> Weights:
    """Per-parameter arrays (gradients, momentum buffers) under native names -> canonical names and layouts."""
    table = rules.key_map(spec, fmt)
    return {ck: table[ck][2](np.asarray(native[table[ck][0]])) for ck in trainable_keys(spec)}


def params_to_native(canonical: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str, source: str,
                     dtype: type = np.float32) -> Weights:
    """Canonical per-parameter arrays -> native names and layouts (as `dtype`); strict about names and shapes."""
    keys = trainable_keys(spec)
    missing = [k for k in keys if k not in canonical]
    unexpected = [k for k in canonical if k not in set(keys)]
    if missing or unexpected:
        parts = ([f"missing keys {few_keys(missing)}"] if missing else []) + \
                ([f"unexpected keys {few_keys(unexpected)}"] if unexpected else [])
        raise UserError(f"{source}: does not match the parameters of {spec.name}: " + "; ".join(parts))
    shapes = canonical_shapes(spec)
    for k in keys:
        if tuple(canonical[k].shape) != shapes[k]:
            raise UserError(f"{source}: key {k}: expected shape {shapes[k]}, found {tuple(canonical[k].shape)}")
    table = rules.key_map(spec, fmt)
    return {table[k][0]: table[k][1](np.asarray(canonical[k], dtype=dtype)) for k in keys}
