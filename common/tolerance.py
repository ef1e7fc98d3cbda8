"""The one tolerance policy: how close two implementations must be, per dtype and per check.

Errors are relative to the reference tensor's scale, rel = max|a - b| / max|ref| (element-wise
relative error explodes wherever the reference crosses zero). fp32 bounds per check against the
float64 oracle, pairs of frameworks twice that where both sides err; bf16 / fp16 in units of the
dtype's unit round-off, capped at CAP; fp64 (`STRICT`) one bound, FP64_BOUND, for every quantity
and pair, with no floors, no ReLU branch-following and free-running trajectories. A quantity beyond
its bound but within FLOOR_FACTOR times its conditioning floor (how far float64 moves when inputs
and weights move by one round-off) is conditioning-limited, not a pass. The oracle's backward
follows a framework's ReLU branch at inputs within KINK_MARGIN of zero. The reasoning and the
measurements behind every number: docs/tolerances.md.
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
UNIT_ROUNDOFF = {"fp32": 2.0 ** -24, "bf16": 2.0 ** -8, "fp16": 2.0 ** -11, "fp64": 2.0 ** -53}
# A port that agrees with the float64 oracle this closely computes the same function: in fp64 every
# quantity (stage outputs, running statistics, gradients, parameters, momentum buffers, K-step
# trajectories), against the oracle and between frameworks, meets it with no excuse.
FP64_BOUND = 1e-10
STRICT = ("fp64",)  # dtypes judged by FP64_BOUND alone: no conditioning floors, no branch-following
LOW_PRECISION_KINDS = ("eval", "reference", "train", "running_stats")
_LOW_PRECISION_UNITS = 16.0
CAP = 1e-1  # no allowance goes beyond this (a floor that needs more excuses nothing): wrong ports measured by the guide err by 1.0 to 9.5
FLOOR_FACTOR = 30.0
KINK_MARGIN = 1e-3


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
    if dtype not in UNIT_ROUNDOFF:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(UNIT_ROUNDOFF)}")
    if dtype in STRICT:
        return FP64_BOUND
    factor = _PAIRWISE_FACTOR[check] if pairwise else 1.0
    if dtype == "fp32":
        return _FP32_VS_ORACLE[check] * factor
    if check not in LOW_PRECISION_KINDS:
        raise UserError(f"{check} is checked in fp32 only, not {dtype}")
    return min(_LOW_PRECISION_UNITS * UNIT_ROUNDOFF[dtype] * factor, CAP)


def floor_allowance(floor: float, check: str, pairwise: bool = False) -> float:
    """The largest error a quantity with conditioning floor `floor` may show and still be called
    conditioning-limited (see docs/tolerances.md). A floor so high that FLOOR_FACTOR floors pass CAP
    means the dtype cannot tell a wrong port from rounding there: no allowance, the quantity fails."""
    factor = _PAIRWISE_FACTOR.get(check, 1.0) if pairwise else 1.0
    allowance = FLOOR_FACTOR * floor * factor
    return allowance if allowance <= CAP else 0.0


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
