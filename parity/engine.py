"""The parity engine: same weights, same inputs, every framework and the float64 oracle, compared.

Every participant (a framework or the oracle) turns one `ParityCase` into a flat dict of named
outputs `"{check}/{quantity}"`, in execution order. Comparing two participants is then a loop
over shared names; the first failing name in order is the first divergence.

The checks (eval, stagewise, train, grad, step, steps) are described in docs/parity.md.
The training checks record each forward's ReLU branches in every framework; the oracle's backward
follows a framework's branch wherever float64 puts the input within KINK_MARGIN of zero
(`follow_gates`), so a gradient's jump at a kink is not mistaken for an error. An fp64 run
(`tolerance.STRICT`) follows nothing and restarts nothing: branches are only counted and the K-step
trajectories run free. Every dtype compares the momentum buffers and running statistics after each
step, and a ReLU branch taken farther than KINK_MARGIN from zero (a conflict) fails its check.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common.canonical import Weights, is_buffer, random_weights
from resnet_rosetta.common.oracle import GateMatch, Oracle
from resnet_rosetta.common.precision import float32_exact, representable, representable_weights, strict_spec
from resnet_rosetta.common.spec import STAGE_NAMES, ResNetSpec
from resnet_rosetta.common.tolerance import KINK_MARGIN, STRICT, UNIT_ROUNDOFF, compare, floor_allowance, tolerance

CHECKS = ("eval", "train", "grad", "step", "steps")
ORACLE = "oracle"
FEED_STAGES = STAGE_NAMES[:5] + ("pooled",)  # outputs that feed the next stage in stagewise mode
GATES = "gates/"  # "gates/{forward}/{site}": the ReLU branches (bool) of one forward
MOMENTUM = "momentum/"  # "momentum/step{k}/{param}": the SGD momentum buffer after step k
SIDE_CHANNELS = (GATES, MOMENTUM)  # outputs that feed the oracle and are never compared
TRAINING_CHECKS = ("grad", "step", "steps")  # their oracle follows each framework's ReLU branches

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Hyper:
    """SGD settings shared by every framework's optimizer and the oracle."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.1  # lr * wd = 1e-3: a step's decay 10x the step bound (1e-4 made it 1e-6, invisible)
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
    dtype: str = "fp32"  # compute dtype of every check; weights and inputs already on its grid
    device: str = "cpu"  # where the frameworks compute: "cpu" or "gpu" (the oracle always on the CPU)

    @property
    def strict(self) -> bool:
        """fp64: no floors, no branch-following, free-running trajectories, momentum compared."""
        return self.dtype in STRICT

    @classmethod
    def seeded(cls, spec: ResNetSpec, size: int, batch: int, seed: int = 0, weights: Weights | None = None,
               hyper: Hyper = Hyper(), grad_size: int | None = None, dtype: str = "fp32") -> "ParityCase":
        rng = np.random.default_rng(seed + 1)
        spec = strict_spec(spec, dtype)  # fp64: BN constants every framework holds exactly
        if dtype in STRICT:  # and SGD coefficients too (Paddle's are float32 attributes)
            hyper = replace(hyper, lr=float32_exact(hyper.lr), momentum=float32_exact(hyper.momentum),
                            weight_decay=float32_exact(hyper.weight_decay))

        def draw(side: int) -> np.ndarray:
            return representable(rng.normal(0.0, 1.0, (batch, spec.in_channels, side, side)), dtype, "input")

        x = draw(size)
        batches = tuple((draw(grad_size or size), rng.integers(0, spec.num_classes, batch).astype(np.int64))
                        for _ in range(hyper.steps))
        w = random_weights(spec, seed) if weights is None else weights
        return cls(spec, representable_weights({k: v.astype(np.float32) for k, v in w.items()}, dtype), x, batches,
                   hyper, dtype=dtype)


def framework_outputs(name: str, case: ParityCase, checks: tuple[str, ...], port: object | None = None) -> Outputs:
    """Run `checks` in framework `name` (in this process); with `port`, on a user's model in that
    framework (`usermodel.UserModel.port()`: its `adapter` and `trainer` in place of ours).

    One model serves eval then train (train mutates the running statistics, so it comes last);
    `step` is the first step of `steps` (same weights, same first batch), so one trainer serves both.
    """
    adapter = frameworks.load(name)
    spec, h = case.spec, case.hyper
    out: Outputs = {}
    if {"eval", "train"} & set(checks):
        build = port.adapter if port else adapter.Adapter  # type: ignore[attr-defined]
        model = build(spec, case.weights, device=case.device, dtype=case.dtype)
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
            make = port.trainer if port else training.Trainer  # type: ignore[attr-defined]
            return make(spec, case.weights, lr=h.lr, momentum=h.momentum, weight_decay=h.weight_decay,
                        device=case.device, record_gates=True, dtype=case.dtype)
        if "grad" in checks:
            t = trainer()
            loss, grads = t.loss_and_grads(*case.batches[0])
            out["grad/loss"] = _scalar(loss)
            out.update(_prefixed("grad", backward_order(grads)))
            out.update(_prefixed(f"{GATES}grad", t.gates))  # the branches of the forward behind `grads`
        if {"step", "steps"} & set(checks):
            t = trainer()
            for k, (bx, by) in enumerate(case.batches if "steps" in checks else case.batches[:1], start=1):
                loss = t.step(bx, by)
                out.update(_prefixed(f"{GATES}step{k}", t.gates))
                momentum = t.optimizer_state()
                out.update(_step_outputs(case, checks, k, loss, t.canonical_weights(), momentum))
    return out


def _step_outputs(case: ParityCase, checks: tuple[str, ...], k: int, loss: float, weights: Weights,
                  momentum: Weights) -> Outputs:
    """What step k of a trajectory (a framework's or the oracle's) contributes: `step` is step 1,
    `steps` every step; momentum buffers travel under `momentum/` for `follow_gates`, and are
    compared as `momentum:` quantities, beside each step's running statistics (`stepK.stats:`)."""
    out: Outputs = _prefixed(f"{MOMENTUM}step{k}", momentum) if "steps" in checks else {}
    if k == 1 and "step" in checks:
        out["step/loss"] = _scalar(loss)
        out.update(_prefixed("step", weights))
        out.update(_prefixed("step/momentum", momentum, sep=":"))
    if "steps" in checks:
        out[f"steps/step{k}.loss"] = _scalar(loss)
        out.update(_prefixed(f"steps/step{k}", _params(weights), sep=":"))
        out.update(_prefixed(f"steps/step{k}.momentum", momentum, sep=":"))
        out.update(_prefixed(f"steps/step{k}.stats", _buffers(weights), sep=":"))
    return out


def oracle_outputs(case: ParityCase, checks: tuple[str, ...]) -> Outputs:
    """The float64 reference for every check, on float64's own ReLU branches (which it records
    under `gates/`; `follow_gates` redoes the training checks on a framework's branches)."""
    spec = case.spec
    out: Outputs = {}
    if "eval" in checks:
        out.update(_prefixed("eval", Oracle(spec, case.weights).forward(case.x)))
    if "train" in checks:
        oracle = Oracle(spec, case.weights)
        out.update(_prefixed("train", oracle.forward(case.x, train=True)))
        out.update(_prefixed("train", _buffers(oracle.weights)))
    out.update(_oracle_training(case, checks, {})[0])
    return out


def _oracle_training(case: ParityCase, checks: tuple[str, ...], gates: Mapping[str, Mapping[str, np.ndarray]],
                     states: Mapping[int, tuple[Weights, Weights]] | None = None,
                     nudge: Callable[[np.ndarray], np.ndarray] | None = None,
                     follow_kinks: bool = True) -> tuple[Outputs, GateMatch]:
    """The oracle's grad, step and steps outputs, with the branches it took under `gates/` and its
    momentum buffers under `momentum/`.

    `gates` maps a forward ("grad", "step1" .. "stepK") to the ReLU branches to follow near the
    kinks in it (float64's own where absent; with follow_kinks=False only counted). `states` maps k
    to (parameters, momentum) after step k of a framework: step k + 1 then starts from that state
    instead of the oracle's own, so each step is checked on its own (`nudge`, for the conditioning
    floor, moves every such state). SGD with momentum and weight decay in float64, torch's rule:
    b = m * b + (g + wd * p) (b = g + wd * p at the first step), p -= lr * b.
    """
    spec, h = case.spec, case.hyper
    out: Outputs = {}
    match = GateMatch()
    first = None  # grad's forward and backward: step 1's too (same weights, batch and branches)
    if "grad" in checks:
        oracle = Oracle(spec, case.weights)
        loss, grads = oracle.loss_and_grads(*case.batches[0], gates=gates.get("grad"), follow_kinks=follow_kinks)
        if _same_gates(gates.get("grad"), gates.get("step1")):
            first = (oracle, loss, grads)
        out["grad/loss"] = _scalar(loss)
        out.update(_prefixed("grad", backward_order(grads)))
        out.update(_prefixed(f"{GATES}grad", oracle.gates))
        match += _in_forward(oracle.gate_match, "grad")
    if "step" in checks or "steps" in checks:
        weights: Weights = dict(case.weights)
        momentum: Weights = {}
        for k, (bx, by) in enumerate(case.batches if "steps" in checks else case.batches[:1], start=1):
            if states and k - 1 in states:
                params, momentum = states[k - 1][0], dict(states[k - 1][1])
                weights = {**weights, **params}
                if nudge is not None:
                    weights = {n: nudge(v) if n in params else v for n, v in weights.items()}
                    momentum = {n: nudge(v) for n, v in momentum.items()}
            if k == 1 and first is not None:
                oracle, loss, grads = first
            else:
                oracle = Oracle(spec, weights)
                loss, grads = oracle.loss_and_grads(bx, by, gates=gates.get(f"step{k}"), follow_kinks=follow_kinks)
            weights = dict(oracle.weights)  # with the running statistics this forward updated
            for name, g in grads.items():
                d = g + h.weight_decay * weights[name]
                momentum[name] = d if k == 1 else h.momentum * momentum[name] + d
                weights[name] = weights[name] - h.lr * momentum[name]
            out.update(_prefixed(f"{GATES}step{k}", oracle.gates))
            match += _in_forward(oracle.gate_match, f"step{k}")
            out.update(_step_outputs(case, checks, k, loss, dict(weights), dict(momentum)))
    return out, match


def _same_gates(a: Mapping[str, np.ndarray] | None, b: Mapping[str, np.ndarray] | None) -> bool:
    """Whether two forwards' ReLU branches to follow are the same (None: float64's own)."""
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _in_forward(match: GateMatch, forward: str) -> GateMatch:
    """`match`, naming `forward` as one with a conflict if it has any."""
    return replace(match, forwards=(forward,)) if match.conflicts else match


def _rests_on(check: str, forward: str) -> bool:
    """Whether a training check's outputs come from that forward pass (grad, step1 .. stepK)."""
    return forward == "grad" if check == "grad" else forward == "step1" if check == "step" else forward != "grad"


def conflict_rows(check: str, names: tuple[str, ...], matches: Mapping[str, GateMatch]) -> list[Row]:
    """A failing row per participant whose forward took the other ReLU branch farther than KINK_MARGIN
    from zero in a forward this check rests on: a forward error, which no gradient bound may excuse.
    `max_rel` is the farthest such input's distance from zero relative to its layer's max input."""
    rows = []
    for name in names:
        m = matches.get(name)
        if m is not None and m.conflicts and any(_rests_on(check, f) for f in m.forwards):
            rows.append(Row(f"relu_conflicts ({name}, {m.conflicts} ReLU input(s) beyond {KINK_MARGIN:g} of zero on "
                            f"the other branch, in {', '.join(m.forwards)}; {', '.join(m.sites[:3])})",
                            m.farthest_abs, m.farthest, KINK_MARGIN, False))
    return rows


def trajectory_states(outputs: Mapping[str, np.ndarray]) -> dict[int, tuple[Weights, Weights]]:
    """Step k -> (parameters and running statistics, momentum buffers) after it, from a participant's
    steps outputs."""
    states: dict[int, tuple[Weights, Weights]] = {}
    for key, value in outputs.items():
        if key.startswith(MOMENTUM):
            step, param = key[len(MOMENTUM):].split("/", 1)
            k = int(step.removeprefix("step"))
            params, buffers = states.setdefault(k, ({}, {}))
            params[param], buffers[param] = outputs[f"steps/{step}:{param}"], value
        elif key.startswith("steps/step") and ".stats:" in key:
            step, name = key[len("steps/"):].split(".stats:", 1)
            states.setdefault(int(step.removeprefix("step")), ({}, {}))[0][name] = value
    return states


def gates_by_forward(outputs: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """`gates/{forward}/{site}` entries of a participant's outputs, as forward -> site -> gate."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for key, value in outputs.items():
        if key.startswith(GATES):
            forward, site = key[len(GATES):].split("/", 1)
            found.setdefault(forward, {})[site] = value
    return found


def follow_gates(case: ParityCase, checks: tuple[str, ...], results: Mapping[str, Outputs]
                 ) -> tuple[dict[str, Outputs], dict[str, GateMatch]]:
    """Per framework, the oracle's training checks redone on that framework's own ReLU branches.

    A gradient jumps where a ReLU input crosses zero, and fp32 may put an input that float64 puts
    just below zero just above it. Wherever a framework's branch differs from float64's at an
    input within KINK_MARGIN of zero, the oracle's backward follows the framework; branches that
    differ farther out are conflicts, counted and never followed. The steps check also starts each
    oracle step from the framework's own state after the step before. So the oracle's training
    checks run once more per framework (skipped only for grad / step alone when every branch
    agrees). An fp64 case (`case.strict`) follows nothing and restarts nothing: where a framework's
    branches differ from float64's, the oracle reruns only to count the flips and conflicts, and
    no reference replaces the shared one. Returns (framework -> the oracle outputs that
    replace the shared ones for it, framework -> how its branches matched float64's).
    """
    own = gates_by_forward(results.get(ORACLE, {}))
    references: dict[str, Outputs] = {}
    matches: dict[str, GateMatch] = {}
    for name, out in results.items():
        gates = gates_by_forward(out)
        if name == ORACLE or not gates or not set(TRAINING_CHECKS) & set(checks):
            continue
        states = trajectory_states(out) if "steps" in checks and not case.strict else {}
        same = all(np.array_equal(g, own.get(fw, {}).get(site)) for fw, sites in gates.items()
                   for site, g in sites.items())
        if same and not states:
            matches[name] = GateMatch()
            continue
        redone, matches[name] = _oracle_training(case, checks, gates, states, follow_kinks=not case.strict)
        if case.strict:
            continue
        references[name] = {k: v for k, v in redone.items() if not k.startswith(SIDE_CHANNELS)}
    return references, matches


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
    moved = oracle_outputs(nudged, tuple(c for c in checks if c not in TRAINING_CHECKS))
    # The training checks keep the unnudged run's ReLU branches (a kink flip is not conditioning),
    # and each of the K steps starts from the unnudged state after the step before, moved by one
    # unit round-off, as the steps check starts each step from the framework's own state.
    moved.update(_oracle_training(nudged, checks, gates_by_forward(reference), trajectory_states(reference),
                                  nudge)[0])
    return {k: compare(moved[k], ref, 0.0).max_rel for k, ref in reference.items()
            if k in moved and not k.startswith(SIDE_CHANNELS)}


def stagewise_reference(oracle: Outputs) -> Outputs:
    """Fed stage by stage, each stage must reproduce the oracle's own output for it."""
    return {f"stagewise/{k[5:]}": v for k, v in oracle.items() if k.startswith("eval/")}


def with_stagewise_feed(case: ParityCase, oracle: Outputs) -> ParityCase:
    """The case, carrying the oracle's eval stage outputs to feed each framework's next stage."""
    return replace(case, feed={s: representable(oracle[f"eval/{s}"], case.dtype) for s in FEED_STAGES})


def backward_order(grads: Mapping[str, np.ndarray]) -> Weights:
    """Gradients in the order the backward pass computes them (canonical order reversed: fc first),
    so the grad check's first divergence is where a backward bug starts, not the stem's gradient,
    which every error upstream of the loss reaches last."""
    return dict(reversed(list(grads.items())))


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
    if "momentum:" in quantity:  # g + wd * p (+ m * b): a gradient's error, not a parameter's
        return "grad"
    return "eval" if check == "stagewise" else check


@dataclass(frozen=True)
class Row:
    """One quantity of one check compared between two participants."""

    quantity: str
    max_abs: float
    max_rel: float
    tolerance: float
    passed: bool
    floor: float | None = None  # the quantity's conditioning floor, when measured
    floor_limited: bool = False  # failing, but within the allowance of its conditioning floor


@dataclass
class Comparison:
    """All quantities of one check between two participants, in execution order."""

    arch: str
    check: str
    left: str
    right: str
    rows: list[Row] = field(default_factory=list)
    note: str = ""  # which ReLU branches the oracle followed, for the training checks

    @property
    def passed(self) -> bool:
        """True unless some quantity fails by more than its conditioning floor allows."""
        return all(r.passed or r.floor_limited for r in self.rows)

    @property
    def status(self) -> str:
        if all(r.passed for r in self.rows):
            return "pass"
        return "conditioning-limited" if self.passed else "FAIL"

    @property
    def first_divergence(self) -> Row | None:
        return next((r for r in self.rows if not r.passed), None)

    @property
    def first_unexcused(self) -> Row | None:
        """The first failing quantity that the conditioning floor does not explain."""
        return next((r for r in self.rows if not (r.passed or r.floor_limited)), None)

    @property
    def worst(self) -> Row:
        return max(self.rows, key=lambda r: r.max_rel / r.tolerance)


def compare_participants(arch: str, results: Mapping[str, Outputs], dtype: str = "fp32",
                         informational: tuple[str, ...] = (),
                         references: Mapping[str, Outputs] | None = None,
                         matches: Mapping[str, GateMatch] | None = None,
                         floors: Mapping[str, float] | None = None) -> list[Comparison]:
    """Each framework vs the oracle, then each framework pair, per check, in execution order.

    Quantities whose name ends with one of `informational` are measured and shown but cannot fail.
    `references` (from `follow_gates`) replace the oracle's outputs for one framework: its
    training checks on that framework's ReLU branches (and, for steps, from its own state). Where
    either side of a pair has such a reference, the right side is moved onto the left's by the
    exact float64 difference, right + (left's oracle - right's oracle). A failing quantity within the
    allowance of its conditioning floor (`floors`, from `conditioning_floors`) is
    conditioning-limited. `matches` only annotates the comparisons.
    """
    floor_of = floors or {}
    refs = references or {}
    names = [n for n in results if n != ORACLE]
    pairs = [(n, ORACLE) for n in names if ORACLE in results]
    pairs += [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def oracle_for(name: str, key: str) -> np.ndarray:
        return refs.get(name, {}).get(key, results[ORACLE][key])
    comparisons: list[Comparison] = []
    for left, right in pairs:
        by_check: dict[str, Comparison] = {}
        for key, ref in results[right].items():
            if key.startswith(SIDE_CHANNELS) or key not in results[left]:
                continue
            if right == ORACLE:
                ref = oracle_for(left, key)
            elif key in refs.get(left, {}) or key in refs.get(right, {}):
                ref = ref + (oracle_for(left, key) - oracle_for(right, key))
            check, quantity = key.split("/", 1)
            kind = tolerance_kind(check, quantity)
            tol = tolerance(kind, dtype, pairwise=right != ORACLE)
            c = compare(results[left][key], ref, tol)
            ok = c.passed or quantity.endswith(informational)
            floor = floor_of.get(key)
            limited = (not ok and floor is not None
                       and c.max_rel <= floor_allowance(floor, kind, pairwise=right != ORACLE))
            if check not in by_check:
                by_check[check] = Comparison(arch, check, left, right,
                                             note=_branch_note(check, left, right, matches or {}, dtype in STRICT))
            by_check[check].rows.append(Row(quantity, c.max_abs, c.max_rel, tol, ok, floor, limited))
        for comp in by_check.values():
            if comp.check in TRAINING_CHECKS:
                comp.rows[:0] = conflict_rows(comp.check, (left, right), matches or {})
        comparisons.extend(_summarise_steps(c) if c.check == "steps" else c for c in by_check.values())
    return comparisons


def _branch_note(check: str, left: str, right: str, matches: Mapping[str, GateMatch], strict: bool = False) -> str:
    """For a training check: at how many ReLU kinks the oracle followed each side's branch."""
    if check not in TRAINING_CHECKS:
        return ""
    parts = []
    for name in (left, right):
        m = matches.get(name)
        if m is not None and (m.flips or m.conflicts):
            where = ", ".join(m.sites)
            parts.append(f"{name} took the other branch at {m.flips} ReLU input(s) within {m.widest:.0e} of zero"
                         + (" (not followed: float64)" if strict and m.flips else "")
                         + (f" and disagreed at {m.conflicts} farther out (not followed)" if m.conflicts else "")
                         + f" ({where})")
    return "; ".join(parts)


def _summarise_steps(comp: Comparison) -> Comparison:
    """K steps x every parameter is too much to read: per step one loss row and one row per group of
    tensors (`stepK:` parameters, `stepK.momentum:`, `stepK.stats:`), its worst tensor."""
    groups: dict[str, list[Row]] = {}
    for r in comp.rows:
        group, sep, _ = r.quantity.partition(":")
        if sep:
            groups.setdefault(group, []).append(r)
    summary: list[Row] = []
    for r in comp.rows:
        if ":" in r.quantity:
            continue
        summary.append(r)
        step = r.quantity.removesuffix(".loss")
        for group, rows in groups.items():
            if group == step or group.startswith(step + "."):
                worst = max(rows, key=lambda p: p.max_rel / p.tolerance)
                failing = [p for p in rows if not p.passed]
                label = f"{step}.params" if group == step else group
                summary.append(Row(f"{label} (worst: {worst.quantity.split(':', 1)[1]})", worst.max_abs,
                                   worst.max_rel, worst.tolerance, not failing, worst.floor,
                                   bool(failing) and all(p.floor_limited for p in failing)))
    return Comparison(comp.arch, comp.check, comp.left, comp.right, summary, comp.note)


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
