"""Compute dtypes of the parity checks, and rounding fp32 data onto them in pure NumPy.

A bf16 or fp16 parity run first rounds the weights and inputs onto the low-precision grid (kept
as float32 arrays, which hold every bf16 and fp16 value exactly). Each framework then casts them
to its own bf16 / fp16 type without further rounding, and the float64 oracle computes from the
very same numbers: what is compared is the frameworks' low-precision arithmetic, not the
rounding of their inputs. An fp64 run keeps float64 arrays: float32 weights and float64 inputs are
exact there, and a constant a framework stores in float32 (Paddle's BN epsilon) is rounded in the
spec itself (`strict_spec`), so every framework and the oracle use the same exact value.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import UserError
from .spec import ResNetSpec
from .tolerance import STRICT, UNIT_ROUNDOFF

DTYPES = tuple(UNIT_ROUNDOFF)
FP16_MAX = float(np.finfo(np.float16).max)


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return dtype


def representable(a: np.ndarray, dtype: str, what: str = "array") -> np.ndarray:
    """`a` rounded to nearest-even onto `dtype`'s grid, as float32 (a copy; fp32 is returned as is),
    or as float64 for fp64."""
    if check_dtype(dtype) == "fp64":
        return np.asarray(a, dtype=np.float64)
    a = np.asarray(a, dtype=np.float32)
    if dtype == "fp32":
        return a
    if dtype == "fp16":
        if a.size and float(np.max(np.abs(a))) > FP16_MAX:
            raise UserError(f"{what}: values up to {float(np.max(np.abs(a))):.4g} exceed the fp16 range "
                            f"(max {FP16_MAX:g})")
        return a.astype(np.float16).astype(np.float32)
    bits = np.ascontiguousarray(a).view(np.uint32)
    lsb = (bits >> 16) & np.uint32(1)  # round half to even on the 16 bits that bf16 drops
    return ((bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)).view(np.float32)


def representable_weights(weights: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """Every floating-point tensor rounded onto `dtype` (integer buffers untouched)."""
    return {k: representable(v, dtype, k) if np.issubdtype(np.asarray(v).dtype, np.floating) else v
            for k, v in weights.items()}


def host_dtype(dtype: str) -> type:
    """The NumPy dtype outputs of a `dtype` run come back in: float64 for fp64, else float32 (NumPy
    has no bfloat16, and float32 holds every bf16 / fp16 value exactly)."""
    return np.float64 if check_dtype(dtype) == "fp64" else np.float32


def float32_exact(value: float) -> float:
    """`value` rounded to float32, as a Python float: a constant every framework holds exactly
    (Paddle keeps optimizer coefficients, like BN's, as float32 attributes in float64 models)."""
    return float(np.float32(value))


def strict_spec(spec: ResNetSpec, dtype: str) -> ResNetSpec:
    """The spec an fp64 (`STRICT`) run uses. Paddle keeps batch norm's `epsilon` and `momentum` as
    float32 attributes even in a float64 model (1e-5 becomes 9.99999974738e-06, its momentum 0.9
    becomes 0.899999976158), so the run takes an epsilon rounded to float32 and a momentum m on the
    2**-24 grid, where m and Paddle's 1 - m are both float32: exact in every framework and the
    oracle. Other dtypes: unchanged."""
    if dtype not in STRICT:
        return spec
    return spec.replace(bn_eps=float32_exact(spec.bn_eps), bn_momentum=round(spec.bn_momentum * 2 ** 24) / 2 ** 24)


def run_bn_constants(spec: ResNetSpec, eps: float, momentum: float | None) -> tuple[float | None, float | None]:
    """For a user's batch norm in an fp64 run with the (strict) `spec`: the run's exact epsilon and
    momentum (torch's convention) where the user's values round to them as `strict_spec` rounds, so
    that a correct port holds the same constants as this suite's; None for a value that does not (a
    port's bug, left as written)."""
    exact_eps = spec.bn_eps if float32_exact(eps) == spec.bn_eps else None
    exact_momentum = (spec.bn_momentum if momentum is not None and
                      strict_spec(spec.replace(bn_momentum=momentum), "fp64").bn_momentum == spec.bn_momentum else None)
    return exact_eps, exact_momentum
