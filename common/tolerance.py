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

bf16 / fp16 (forward checks only): their kernels accumulate in fp32 and round each layer's output
once, so errors grow in units of the dtype's unit round-off u (2^-8 / 2^-11), not with the length
of the sums. Measured here (resnet18 / resnet50, 64 and 224 px, eval, torch and Flax vs the
oracle): 4-7 u. The tolerance is 16 u (bf16 6.25e-2, fp16 7.8e-3), pairs twice that, capped at
CAP: wrong ports (errors of 1.0-9.5, measured by the differences guide) still fail; a 1/(n-1)
running-variance convention difference (a few 1e-2) is below what bf16 can resolve.

Conditioning floor. Some quantities are far more sensitive to rounding than the policy assumes:
train-mode resnet50 at batch 4 (measured below; batch norm on batch statistics, which subtracts
each channel's batch mean, is the likely amplifier). The engine measures this per quantity: the
float64 oracle is rerun with every weight and input moved by up to one unit round-off of the
run's dtype (relative, uniform), and the change of each output is its floor (no implementation in
that dtype can do better: rounding its inputs alone costs that much).
Measured (fp32, batch 4, 224 px, two random draws): resnet50 eval layer4 floor 3.4-3.5e-7,
framework errors 1.2-3.2e-6; resnet50 train layer4 floor 1.1-1.6e-5, framework errors
6.2e-5..1.0e-4. Over every stage and running statistic of resnet18 and resnet50, eval and train,
errors sit at 0.7-14 floors; the eval tolerance 1e-5 is about 30 resnet50 eval floors. A quantity beyond the tolerance but within FLOOR_FACTOR (30) floors, and within the cap,
is conditioning-limited: shown, not a pass. A floor so high that 30 floors pass the cap (bf16
train-mode resnet50: floor 0.5) means the check cannot tell a wrong port from rounding at that
dtype; such a quantity fails and says so.

ReLU kinks. A gradient is discontinuous where a ReLU input crosses zero, and in a ResNet of
millions of activations some input always lies closer to zero than fp32 forward error: fp32 then
takes the other branch, and every gradient upstream of it moves by several percent (measured:
one flipped input of resnet18 moves the layer4.0 downsample gradient by 6.8e-2). No tolerance can
absorb that and still catch a wrong backward. So each framework reports its ReLU branches (bool
gates from the very forward that produced its gradients), and the oracle's backward follows them
at every input within KINK_MARGIN of zero (relative to the max |input| of that ReLU), and its own
float64 branches everywhere else; then the gradient bounds hold strictly. KINK_MARGIN = 1e-3 is
ten times the largest fp32 forward error measured on any stage (train-mode resnet50 layer4, 1e-4);
a framework branch that disagrees farther from zero is a forward error: it is counted as a
conflict, never followed. Measured in the default run (64 px, batch 4, grad + 5 steps): resnet18
1-4 flips per framework, resnet50 26-37, the widest 3.8e-5 from zero, no conflict; with the
branches followed resnet18 gradients sit at 0.9-1.6e-5, where the unfollowed ones were off by
4.7e-2.
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
UNIT_ROUNDOFF = {"fp32": 2.0 ** -24, "bf16": 2.0 ** -8, "fp16": 2.0 ** -11}
LOW_PRECISION_KINDS = ("eval", "reference", "train", "running_stats")
_LOW_PRECISION_UNITS = 16.0
CAP = 1e-1  # no allowance goes beyond this: wrong ports measured by the guide err by 1.0 to 9.5
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
    factor = _PAIRWISE_FACTOR[check] if pairwise else 1.0
    if dtype == "fp32":
        return _FP32_VS_ORACLE[check] * factor
    if check not in LOW_PRECISION_KINDS:
        raise UserError(f"{check} is checked in fp32 only, not {dtype}")
    return min(_LOW_PRECISION_UNITS * UNIT_ROUNDOFF[dtype] * factor, CAP)


def floor_allowance(floor: float, check: str, pairwise: bool = False) -> float:
    """The largest error a quantity with conditioning floor `floor` may show and still be called
    conditioning-limited (see the module notes); never beyond the cap."""
    factor = _PAIRWISE_FACTOR.get(check, 1.0) if pairwise else 1.0
    return min(FLOOR_FACTOR * floor * factor, CAP)


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
