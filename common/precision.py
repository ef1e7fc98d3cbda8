"""Compute dtypes of the parity checks, and rounding fp32 data onto them in pure NumPy.

A bf16 or fp16 parity run first rounds the weights and inputs onto the low-precision grid (kept
as float32 arrays, which hold every bf16 and fp16 value exactly). Each framework then casts them
to its own bf16 / fp16 type without further rounding, and the float64 oracle computes from the
very same numbers: what is compared is the frameworks' low-precision arithmetic, not the
rounding of their inputs.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import UserError
from .tolerance import UNIT_ROUNDOFF

DTYPES = tuple(UNIT_ROUNDOFF)
FP16_MAX = float(np.finfo(np.float16).max)


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return dtype


def representable(a: np.ndarray, dtype: str, what: str = "array") -> np.ndarray:
    """`a` rounded to nearest-even onto `dtype`'s grid, as float32 (a copy; fp32 is returned as is)."""
    a = np.asarray(a, dtype=np.float32)
    if check_dtype(dtype) == "fp32":
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
