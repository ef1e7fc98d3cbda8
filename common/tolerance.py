"""The one tolerance policy: how close two implementations must be, per dtype and per check.

Errors are measured relative to the reference tensor's scale:
    rel = max|a - b| / max|ref|
not element-wise, because element-wise relative error explodes wherever the reference crosses zero
and says nothing about whether the network computes the same function.

Reasoning (fp32, CPU, measured on this project's machine):
- eval forward: every framework lands within ~1e-6 of the float64 oracle on resnet18/50 stage
  outputs (fp32 has 6e-8 unit round-off; ~50 layers of accumulation grow it ~10x). 1e-5 leaves
  margin for other BLAS / oneDNN kernels; framework pairs get twice that (both sides err).
- train-mode forward: batch statistics add one more reduction per BN; same 1e-5.
- our model vs the framework's own reference model (paddle.vision): same kernels, only the op
  order may differ, so 1e-6. (Ours vs torchvision is required to be bit-identical, no tolerance.)
- running statistics after one update: a convex mix of an fp32 value and a batch statistic,
  so 1e-6.
- gradients: backward doubles the chain and divides by batch statistics; 1e-4 per tensor vs the
  oracle, 2e-4 between frameworks.
- parameters after SGD steps: 1e-4 pairwise; losses 1e-5.
bf16 / fp16 carry 8 / 11 mantissa bits (unit round-off 3.9e-3 / 4.9e-4): their tolerances scale
the fp32 ones by the ratio of round-offs, capped so a wrong port (errors of order 1) still fails.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError

TOLERANCE_KINDS = ("eval", "reference", "train", "running_stats", "grad", "step", "steps", "loss")

_FP32_VS_ORACLE = {
    "eval": 1e-5,
    "reference": 1e-6,
    "train": 1e-5,
    "running_stats": 1e-6,
    "grad": 1e-4,
    "step": 1e-4,
    "steps": 1e-4,
    "loss": 1e-5,
}
_PAIRWISE_FACTOR = {"eval": 2.0, "reference": 1.0, "train": 2.0, "running_stats": 2.0, "grad": 2.0,
                    "step": 1.0, "steps": 1.0, "loss": 1.0}
_DTYPE_SCALE = {"fp32": 1.0, "bf16": 2000.0, "fp16": 250.0}
_CAP = 5e-2


@dataclass(frozen=True)
class Comparison:
    """One measured difference between an output and its reference."""

    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_rel)) and self.max_rel <= self.tolerance


def tolerance(check: str, dtype: str = "fp32", pairwise: bool = False) -> float:
    """Relative tolerance (to the reference's max magnitude) for `check` at `dtype`."""
    if check not in _FP32_VS_ORACLE:
        raise UserError(f"unknown check {check!r}; known: {', '.join(TOLERANCE_KINDS)}")
    if dtype not in _DTYPE_SCALE:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(_DTYPE_SCALE)}")
    tol = _FP32_VS_ORACLE[check] * (_PAIRWISE_FACTOR[check] if pairwise else 1.0)
    return min(tol * _DTYPE_SCALE[dtype], _CAP) if dtype != "fp32" else tol


def compare(actual: np.ndarray, reference: np.ndarray, tol: float) -> Comparison:
    """max |actual - reference| absolute and relative to max |reference|."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return Comparison(float("inf"), float("inf"), tol)
    max_abs = float(np.max(np.abs(a - r))) if a.size else 0.0
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return Comparison(max_abs, max_rel, tol)
