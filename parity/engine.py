"""The parity engine: same weights, same inputs, every framework and the float64 oracle, compared.

Every participant (a framework or the oracle) turns one `ParityCase` into a flat dict of named
outputs `"{check}/{quantity}"`, in execution order. Comparing two participants is then a loop
over shared names; the first failing name in order is the first divergence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .. import frameworks
from ..common.canonical import Weights, random_weights
from ..common.oracle import Oracle
from ..common.spec import ResNetSpec
from ..common.tolerance import compare, tolerance

CHECKS = ("eval",)
ORACLE = "oracle"

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class ParityCase:
    """Everything every participant needs: spec, canonical weights, one seeded input batch."""

    spec: ResNetSpec
    weights: Weights
    x: np.ndarray

    @classmethod
    def seeded(cls, spec: ResNetSpec, size: int, batch: int, seed: int = 0,
               weights: Weights | None = None) -> "ParityCase":
        rng = np.random.default_rng(seed + 1)
        x = rng.normal(0.0, 1.0, (batch, spec.in_channels, size, size)).astype(np.float32)
        w = random_weights(spec, seed) if weights is None else weights
        return cls(spec, {k: v.astype(np.float32) for k, v in w.items()}, x)


def framework_outputs(name: str, case: ParityCase, checks: tuple[str, ...]) -> Outputs:
    """Run `checks` in framework `name` (in this process)."""
    adapter_module = frameworks.load(name)
    out: Outputs = {}
    if "eval" in checks:
        model = adapter_module.Adapter(case.spec, case.weights)
        out.update({f"eval/{k}": v for k, v in model.forward(case.x, train=False).items()})
    return out


def oracle_outputs(case: ParityCase, checks: tuple[str, ...]) -> Outputs:
    out: Outputs = {}
    if "eval" in checks:
        out.update({f"eval/{k}": v for k, v in Oracle(case.spec, case.weights).forward(case.x).items()})
    return out


@dataclass(frozen=True)
class Row:
    """One quantity of one check compared between two participants."""

    arch: str
    check: str
    quantity: str
    left: str
    right: str
    max_abs: float
    max_rel: float
    tolerance: float
    passed: bool


@dataclass
class Comparison:
    """All quantities of one check between two participants, in execution order."""

    arch: str
    check: str
    left: str
    right: str
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def first_divergence(self) -> Row | None:
        return next((r for r in self.rows if not r.passed), None)

    @property
    def worst(self) -> Row:
        return max(self.rows, key=lambda r: r.max_rel)


def compare_participants(arch: str, results: Mapping[str, Outputs], dtype: str = "fp32") -> list[Comparison]:
    """Each framework vs the oracle, then each framework pair, per check."""
    names = [n for n in results if n != ORACLE]
    pairs = [(n, ORACLE) for n in names if ORACLE in results]
    pairs += [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    comparisons: list[Comparison] = []
    for left, right in pairs:
        by_check: dict[str, Comparison] = {}
        for key, ref in results[right].items():
            if key not in results[left]:
                continue
            check, quantity = key.split("/", 1)
            tol = tolerance(check, dtype, pairwise=right != ORACLE)
            c = compare(results[left][key], ref, tol)
            comp = by_check.setdefault(check, Comparison(arch, check, left, right))
            comp.rows.append(Row(arch, check, quantity, left, right, c.max_abs, c.max_rel, tol, c.passed))
        comparisons.extend(by_check.values())
    return comparisons
