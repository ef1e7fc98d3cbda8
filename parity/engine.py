"""The parity engine: same weights, same inputs, every framework and the float64 oracle, compared.

Every participant (a framework or the oracle) turns one `ParityCase` into a flat dict of named
outputs `"{check}/{quantity}"`, in execution order. Comparing two participants is then a loop
over shared names; the first failing name in order is the first divergence.

Checks:
    eval       eval-mode stage outputs (stem, layer1..layer4, pooled, logits)
    stagewise  the same, but every stage is fed the oracle's input for that stage (errors do not
               compound, so the faulty stage stands out); runs with `eval`
    train      train-mode stage outputs, then the running statistics after that one forward
    grad       mean cross-entropy and its gradient for every parameter (canonical names); the
               oracle's gradients come from its own NumPy backward pass, in float64
    step       parameters and running statistics after one SGD step (momentum, weight decay)
    steps      K SGD steps on a seeded sequence of batches: per step the loss and the parameters
               (pairwise only: the oracle is not run for K steps)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from .. import frameworks
from ..common.canonical import Weights, is_buffer, random_weights
from ..common.oracle import Oracle
from ..common.precision import representable, representable_weights
from ..common.spec import STAGE_NAMES, ResNetSpec
from ..common.tolerance import UNIT_ROUNDOFF, compare, floor_allowance, tolerance

CHECKS = ("eval", "train", "grad", "step", "steps")
ORACLE = "oracle"
FEED_STAGES = STAGE_NAMES[:5] + ("pooled",)  # outputs that feed the next stage in stagewise mode

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Hyper:
    """SGD settings shared by every framework's optimizer and the oracle."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    steps: int = 5


@dataclass(frozen=True)
class ParityCase:
    """Everything every participant needs: spec, canonical weights, seeded batches, SGD settings."""

    spec: ResNetSpec
    weights: Weights
    x: np.ndarray  # input of the eval and train checks
    batches: tuple[tuple[np.ndarray, np.ndarray], ...]  # (x, labels) of the gradient checks: grad and
    hyper: Hyper = Hyper()                               # step use the first, steps all of them
    feed: Outputs = field(default_factory=dict)  # oracle stage outputs for stagewise mode
    dtype: str = "fp32"  # compute dtype of the forward checks; weights and inputs already on its grid

    @classmethod
    def seeded(cls, spec: ResNetSpec, size: int, batch: int, seed: int = 0, weights: Weights | None = None,
               hyper: Hyper = Hyper(), grad_size: int | None = None, dtype: str = "fp32") -> "ParityCase":
        rng = np.random.default_rng(seed + 1)

        def draw(side: int) -> np.ndarray:
            return representable(rng.normal(0.0, 1.0, (batch, spec.in_channels, side, side)), dtype, "input")

        x = draw(size)
        batches = tuple((draw(grad_size or size), rng.integers(0, spec.num_classes, batch).astype(np.int64))
                        for _ in range(hyper.steps))
        w = random_weights(spec, seed) if weights is None else weights
        return cls(spec, representable_weights({k: v.astype(np.float32) for k, v in w.items()}, dtype), x, batches,
                   hyper, dtype=dtype)


def framework_outputs(name: str, case: ParityCase, checks: tuple[str, ...]) -> Outputs:
    """Run `checks` in framework `name` (in this process).

    One model serves eval then train (train mutates the running statistics, so it comes last);
    `step` is the first step of `steps` (same weights, same first batch), so one trainer serves both.
    """
    adapter = frameworks.load(name)
    spec, h = case.spec, case.hyper
    out: Outputs = {}
    if {"eval", "train"} & set(checks):
        model = adapter.Adapter(spec, case.weights, dtype=case.dtype)
        if "eval" in checks:
            out.update(_prefixed("eval", model.forward(case.x, train=False)))
            if case.feed:
                out.update(_prefixed("stagewise", model.forward(case.x, train=False, feed=case.feed)))
        if "train" in checks:
            out.update(_prefixed("train", model.forward(case.x, train=True)))
            out.update(_prefixed("train", _buffers(model.canonical_weights())))
    if {"grad", "step", "steps"} & set(checks):
        training = frameworks.load(name, "training")

        def trainer() -> object:
            return training.Trainer(spec, case.weights, lr=h.lr, momentum=h.momentum, weight_decay=h.weight_decay)
        if "grad" in checks:
            loss, grads = trainer().loss_and_grads(*case.batches[0])
            out["grad/loss"] = _scalar(loss)
            out.update(_prefixed("grad", grads))
        if {"step", "steps"} & set(checks):
            t = trainer()
            for k, (bx, by) in enumerate(case.batches if "steps" in checks else case.batches[:1], start=1):
                loss = _scalar(t.step(bx, by))
                weights = t.canonical_weights()
                if k == 1 and "step" in checks:
                    out["step/loss"] = loss
                    out.update(_prefixed("step", weights))
                if "steps" in checks:
                    out[f"steps/step{k}.loss"] = loss
                    out.update(_prefixed(f"steps/step{k}", _params(weights), sep=":"))
    return out


def oracle_outputs(case: ParityCase, checks: tuple[str, ...]) -> tuple[Outputs, dict[str, float]]:
    """The float64 reference for every check except `steps` (pairwise only), and the parameters
    whose gradients sit upstream of a ReLU kink closer to zero than fp32 forward error (with the
    closest margin): see `Oracle.kink_exposed`."""
    spec, h = case.spec, case.hyper
    margin = tolerance("eval")  # the fp32 forward error bound: kinks inside it can flip
    out: Outputs = {}
    exposed: dict[str, float] = {}
    if "eval" in checks:
        out.update(_prefixed("eval", Oracle(spec, case.weights).forward(case.x)))
    if "train" in checks:
        oracle = Oracle(spec, case.weights)
        out.update(_prefixed("train", oracle.forward(case.x, train=True)))
        out.update(_prefixed("train", _buffers(oracle.weights)))
    if "grad" in checks or "step" in checks:
        oracle = Oracle(spec, case.weights)
        loss, grads = oracle.loss_and_grads(*case.batches[0])
        exposed.update(oracle.kink_exposed(margin))
        if "grad" in checks:
            out["grad/loss"] = _scalar(loss)
            out.update(_prefixed("grad", grads))
        if "step" in checks:  # first SGD step: the momentum buffer is the decayed gradient itself
            out["step/loss"] = _scalar(loss)
            stepped = {k: (v - h.lr * (grads[k] + h.weight_decay * v)) if k in grads else v
                       for k, v in oracle.weights.items()}
            out.update(_prefixed("step", stepped))
    if "steps" in checks:  # kinks of each batch, at the initial weights (an approximation)
        for bx, _ in case.batches:
            oracle = Oracle(spec, case.weights)
            oracle.forward(bx, train=True)
            for name, m in oracle.kink_exposed(margin).items():
                exposed[name] = min(m, exposed.get(name, m))
    return out, exposed


def conditioning_floors(case: ParityCase, checks: tuple[str, ...], reference: Outputs,
                        seed: int = 0) -> dict[str, float]:
    """Per oracle output, how far it moves (relative to its max) when every weight and input moves
    by up to one unit round-off of the case's dtype: the error no implementation in that dtype can
    be expected to beat (see common/tolerance.py). Costs one more oracle run."""
    rng = np.random.default_rng(seed + 10_007)
    u = UNIT_ROUNDOFF[case.dtype]

    def nudge(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.floating):
            return a
        return a.astype(np.float64) * (1.0 + u * rng.uniform(-1.0, 1.0, a.shape))
    nudged = replace(case, weights={k: nudge(v) for k, v in case.weights.items()}, x=nudge(case.x),
                     batches=tuple((nudge(bx), by) for bx, by in case.batches))
    moved, _ = oracle_outputs(nudged, tuple(c for c in checks if c != "steps"))  # steps: pairwise only
    return {k: compare(moved[k], ref, 0.0).max_rel for k, ref in reference.items() if k in moved}


def stagewise_reference(oracle: Outputs) -> Outputs:
    """Fed stage by stage, each stage must reproduce the oracle's own output for it."""
    return {f"stagewise/{k[5:]}": v for k, v in oracle.items() if k.startswith("eval/")}


def with_stagewise_feed(case: ParityCase, oracle: Outputs) -> ParityCase:
    """The case, carrying the oracle's eval stage outputs to feed each framework's next stage."""
    return replace(case, feed={s: representable(oracle[f"eval/{s}"], case.dtype) for s in FEED_STAGES})


def _scalar(value: float) -> np.ndarray:
    """Scalars travel as shape-(1,) arrays: safetensors files keep that shape exactly."""
    return np.array([value], dtype=np.float64)


def _prefixed(check: str, values: Mapping[str, np.ndarray], sep: str = "/", strip: bool = False) -> Outputs:
    return {f"{check}{sep}{k.split('/', 1)[1] if strip else k}": v for k, v in values.items()}


def _buffers(weights: Mapping[str, np.ndarray]) -> Weights:
    return {k: v for k, v in weights.items() if is_buffer(k)}


def _params(weights: Mapping[str, np.ndarray]) -> Weights:
    return {k: v for k, v in weights.items() if not is_buffer(k)}


def tolerance_kind(check: str, quantity: str) -> str:
    """Which policy entry applies: running statistics and losses have their own."""
    if quantity.endswith("loss"):
        return "loss"
    if is_buffer(quantity):
        return "running_stats"
    return "eval" if check == "stagewise" else check


@dataclass(frozen=True)
class Row:
    """One quantity of one check compared between two participants."""

    quantity: str
    max_abs: float
    max_rel: float
    tolerance: float
    passed: bool
    kink: float | None = None  # failing, but upstream of a ReLU kink this close to zero (relative)
    floor: float | None = None  # the quantity's conditioning floor, when measured
    floor_limited: bool = False  # failing, but within the allowance of its conditioning floor

    @property
    def excused(self) -> bool:
        """Failing for a reason fp32 arithmetic itself imposes (a kink flip, the conditioning floor)."""
        return self.kink is not None or self.floor_limited


@dataclass
class Comparison:
    """All quantities of one check between two participants, in execution order."""

    arch: str
    check: str
    left: str
    right: str
    rows: list[Row] = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool:
        """True unless some quantity fails for a reason other than a ReLU kink or the conditioning floor."""
        return all(r.passed or r.excused for r in self.rows)

    @property
    def status(self) -> str:
        if all(r.passed for r in self.rows):
            return "pass"
        if not self.passed:
            return "FAIL"
        return "kink-limited" if any(r.kink is not None for r in self.rows) else "conditioning-limited"

    @property
    def first_divergence(self) -> Row | None:
        return next((r for r in self.rows if not r.passed), None)

    @property
    def first_unexcused(self) -> Row | None:
        """The first failing quantity that neither a kink nor the conditioning floor explains."""
        return next((r for r in self.rows if not (r.passed or r.excused)), None)

    @property
    def worst(self) -> Row:
        return max(self.rows, key=lambda r: r.max_rel / r.tolerance)


def compare_participants(arch: str, results: Mapping[str, Outputs], dtype: str = "fp32",
                         informational: tuple[str, ...] = (),
                         kink_exposed: Mapping[str, float] | None = None,
                         floors: Mapping[str, float] | None = None) -> list[Comparison]:
    """Each framework vs the oracle, then each framework pair, per check, in execution order.

    Quantities whose name ends with one of `informational` are measured and shown but cannot fail.
    A failing gradient-derived quantity (grad, step, steps) of a parameter in `kink_exposed` is
    marked kink-limited: fp32 can take the other side of a ReLU kink there, float64 cannot.
    Any other failing quantity within the allowance of its conditioning floor (`floors`, from
    `conditioning_floors`) is marked conditioning-limited.
    """
    exposed = kink_exposed or {}
    floor_of = floors or {}
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
            kind = tolerance_kind(check, quantity)
            tol = tolerance(kind, dtype, pairwise=right != ORACLE)
            c = compare(results[left][key], ref, tol)
            ok = c.passed or quantity.endswith(informational)
            param = quantity.rsplit(":", 1)[-1]
            kink = exposed.get(param) if (not ok and check in ("grad", "step", "steps")) else None
            floor = floor_of.get(key)
            limited = (not ok and kink is None and floor is not None
                       and c.max_rel <= floor_allowance(floor, kind, pairwise=right != ORACLE))
            comp = by_check.setdefault(check, Comparison(arch, check, left, right))
            comp.rows.append(Row(quantity, c.max_abs, c.max_rel, tol, ok, kink, floor, limited))
        comparisons.extend(_summarise_steps(c) if c.check == "steps" else c for c in by_check.values())
    return comparisons


def _summarise_steps(comp: Comparison) -> Comparison:
    """K steps x every parameter is too much to read: one loss row and one parameter row per step
    (the worst tensor of that step)."""
    rows: list[Row] = []
    by_step: dict[str, list[Row]] = {}
    for r in comp.rows:
        step, _, tensor = r.quantity.partition(":")
        if tensor:
            by_step.setdefault(step, []).append(r)
        else:
            rows.append(r)
            by_step.setdefault(step.removesuffix(".loss"), [])
    summary: list[Row] = []
    earlier_kink: float | None = None  # once a kink flip made the runs differ, later steps inherit it
    for r in rows:
        step = r.quantity.removesuffix(".loss")
        if not r.passed and earlier_kink is not None:
            r = replace(r, kink=earlier_kink)
        summary.append(r)
        params = by_step.get(step, [])
        if params:
            worst = max(params, key=lambda p: p.max_rel)
            failing = [p for p in params if not p.passed]
            kink = earlier_kink if earlier_kink is not None or not failing else (
                None if any(p.kink is None for p in failing) else min(p.kink for p in failing))  # type: ignore[type-var]
            earlier_kink = kink
            summary.append(Row(f"{step}.params (worst: {worst.quantity.split(':', 1)[1]})", worst.max_abs,
                               worst.max_rel, worst.tolerance, not failing, kink))
    return Comparison(comp.arch, comp.check, comp.left, comp.right, summary)


def running_var_factor(case: ParityCase, results: Mapping[str, Outputs]) -> dict[str, object]:
    """How each framework fed its running variance, measured on the network's last BN layer (the
    one with the fewest samples per channel, n = N*H*W of layer4, so n/(n-1) is largest):
    (new - (1-m) * old) / (m * biased batch variance). n/(n-1) means unbiased, 1 means biased."""
    oracle = Oracle(case.spec.replace(bn_running_var="biased"), case.weights)
    layer4 = oracle.forward(case.x, train=True)["layer4"]
    key = [k for k in case.weights if k.endswith("running_var")][-1]
    n = layer4.size // layer4.shape[1]
    m = case.spec.bn_momentum
    old = case.weights[key].astype(np.float64)
    biased_term = oracle.weights[key] - (1 - m) * old
    factors = {name: float(np.median((out[f"train/{key}"] - (1 - m) * old) / biased_term))
               for name, out in results.items() if name != ORACLE and f"train/{key}" in out}
    return {"layer": key, "n": n, "unbiased_factor": n / (n - 1), "factors": factors}
