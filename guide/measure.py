"""The guide's measured figures: naive ports against the float64 oracle, first-call compile cost, bf16 error.

A pitfall is a real mistake on the way from canonical (torchvision) weights to a framework. Its
naive port runs this repository's model with one convention ignored; its correct port runs the model
as shipped. Both are compared with the oracle, relative to the reference's max magnitude
(common/tolerance.py). tests/test_differences.py runs the same functions and asserts the claims.

`measure()` runs `measure_framework` for every framework in its own process (common/process.py)
and writes docs/differences.json.
"""
from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from types import ModuleType
from typing import Any, Callable, Mapping

import numpy as np

from resnet_rosetta.common import host, process, rules
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.canonical import Weights, is_buffer, random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.oracle import Oracle
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.frameworks import load as load_framework

# Small enough for a test, big enough that every stage runs: one basic block per stage, 32x32 input,
# batch 4, and a square classifier (32 -> 32) so that an un-transposed Linear loads without a shape error.
TINY = get_spec("resnet18").replace(name="tiny10", depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_width=8,
                                    num_classes=32, input_size=32)
BATCH = 4
COMPILE_MODELS = ((TINY.name, TINY, BATCH), ("resnet50", get_spec("resnet50"), 2))
MEASURE_COMMAND = "resnet-rosetta explain --measure docs/differences.json"
DISTRIBUTIONS = {"torch": ("torch",), "paddle": ("paddlepaddle",), "flax": ("flax", "jax")}

# Which tolerance a shipped port meets on the bench. The running statistics come out of a whole
# train-mode forward and inherit its accumulated fp32 error, so they get the train-forward tolerance;
# the parity engine's 1e-6 for running statistics holds when it feeds the oracle's inputs stage by stage.
TOLERANCE_KIND = {"eval": "eval", "running_stats": "train"}

Outputs = dict[str, np.ndarray]
Layout = Callable[[np.ndarray], np.ndarray]
Port = Callable[["Bench"], Outputs]


class Bench:
    """The tiny model, its seeded weights and batch, the oracle's answers and the shipped ports' errors."""

    def __init__(self, spec: ResNetSpec = TINY, seed: int = 0, batch: int = BATCH) -> None:
        self.spec = spec
        self.weights = random_weights(spec, seed)
        shape = (batch, spec.in_channels, spec.input_size, spec.input_size)
        self.x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
        self._adapters: dict[str, Any] = {}
        self._correct: dict[tuple[str, str], float] = {}

    @functools.cached_property
    def eval_reference(self) -> Outputs:
        return {"logits": Oracle(self.spec, self.weights).forward(self.x)["logits"]}

    @functools.cached_property
    def train_reference(self) -> Outputs:
        oracle = Oracle(self.spec, self.weights)
        oracle.forward(self.x, train=True)
        return _running_stats(oracle.weights)

    def reference(self, check: str) -> Outputs:
        return self.eval_reference if check == "eval" else self.train_reference

    def adapter(self, framework: str) -> Any:
        """One eval adapter per framework, reloaded with other weights by the layout pitfalls."""
        if framework not in self._adapters:
            self._adapters[framework] = load_framework(framework).Adapter(self.spec, self.weights)
        return self._adapters[framework]

    def eval_outputs(self, framework: str, weights: Weights) -> Outputs:
        adapter = self.adapter(framework)
        adapter.load(weights)
        return {"logits": adapter.forward(self.x)["logits"]}

    def train_outputs(self, framework: str, spec: ResNetSpec) -> Outputs:
        """Running statistics after one train-mode forward of a fresh model built from `spec`."""
        adapter = load_framework(framework).Adapter(spec, self.weights)
        adapter.forward(self.x, train=True)
        return _running_stats(adapter.canonical_weights())

    def error(self, outputs: Outputs, check: str) -> float:
        """Largest relative error over the compared tensors."""
        reference = self.reference(check)
        return max(compare(outputs[k], reference[k], 0.0).max_rel for k in reference)

    def correct_error(self, framework: str, check: str) -> float:
        """The shipped port's error, computed once per framework and check."""
        if (framework, check) not in self._correct:
            outputs = (self.eval_outputs(framework, self.weights) if check == "eval"
                       else self.train_outputs(framework, self.spec))
            self._correct[(framework, check)] = self.error(outputs, check)
        return self._correct[(framework, check)]


def _running_stats(weights: Mapping[str, np.ndarray]) -> Outputs:
    return {k: np.asarray(v) for k, v in weights.items() if is_buffer(k)}


# ---------------------------------------------------------------- naive ports

def _reshaped(a: np.ndarray, to_native: Layout) -> np.ndarray:
    """The right shape, the wrong layout: the bytes are reinterpreted, not transposed."""
    return a.reshape(to_native(a).shape)


def _reversed_axes(a: np.ndarray, to_native: Layout) -> np.ndarray:
    """`a.T` reverses all four axes: OIHW -> WHIO, which has HWIO's shape for square kernels."""
    return a.T


def _as_is(a: np.ndarray, to_native: Layout) -> np.ndarray:
    return a


def _is_conv(key: str) -> bool:
    return re.search(r"(conv\d|downsample\.0)\.weight$", key) is not None


def _is_fc(key: str) -> bool:
    return key == "fc.weight"


def layout_port(framework: str, select: Callable[[str], bool], mistake: Layout) -> Port:
    """Eval logits with `mistake` instead of the rule table's layout for the selected keys."""

    def port(bench: Bench) -> Outputs:
        weights = dict(bench.weights)  # canonical arrays that the correct rules turn into the naive native ones
        for key, (_, to_native, from_native) in rules.key_map(bench.spec, framework).items():
            if select(key):
                weights[key] = from_native(mistake(bench.weights[key], to_native))
        return bench.eval_outputs(framework, weights)

    return port


def same_padding_port(bench: Bench) -> Outputs:
    """Eval logits of Flax with padding='SAME' everywhere (a fresh adapter, traced inside the patch)."""
    with demos("flax").same_padding_everywhere():
        adapter = load_framework("flax").Adapter(bench.spec, bench.weights)
        return {"logits": adapter.forward(bench.x)["logits"]}


def bn_port(framework: str, **naive_spec: Any) -> Port:
    """Running statistics after one train-mode forward of the model built from a changed spec."""

    def port(bench: Bench) -> Outputs:
        return bench.train_outputs(framework, bench.spec.replace(**naive_spec))

    return port


@dataclass(frozen=True)
class Pitfall:
    """One naive port: what it gets wrong, how its error is measured and how large it must be."""

    name: str
    topic: str
    framework: str
    mistake: str
    check: str  # what is compared: "eval" (logits) or "running_stats" (after one train-mode forward)
    threshold: float  # the naive port's relative error must exceed this
    naive_port: Port

    def errors(self, bench: Bench) -> tuple[float, float]:
        """(naive port's error, shipped port's error) relative to the oracle."""
        return bench.error(self.naive_port(bench), self.check), bench.correct_error(self.framework, self.check)

    @property
    def tolerance(self) -> float:
        return tolerance(TOLERANCE_KIND[self.check])


PITFALLS: tuple[Pitfall, ...] = (
    Pitfall("conv-kernel-reshaped", "weights", "flax", "conv kernel OIHW reshaped to HWIO, not transposed",
            "eval", 1e-1, layout_port("flax", _is_conv, _reshaped)),
    Pitfall("conv-kernel-dot-T", "weights", "flax", "conv kernel `w.T` (WHIO: H and W swapped)",
            "eval", 1e-1, layout_port("flax", _is_conv, _reversed_axes)),
    Pitfall("linear-not-transposed", "weights", "paddle", "Linear `[out, in]` loaded as `[in, out]` (square head)",
            "eval", 1e-1, layout_port("paddle", _is_fc, _as_is)),
    Pitfall("linear-not-transposed", "weights", "flax", "Dense kernel `[out, in]` loaded as `[in, out]` (square head)",
            "eval", 1e-1, layout_port("flax", _is_fc, _as_is)),
    Pitfall("same-padding", "padding", "flax", "padding='SAME' on every conv and max-pool",
            "eval", 1e-1, same_padding_port),
    Pitfall("bn-momentum-as-is", "batchnorm", "paddle", "torch's momentum=0.1 passed to BatchNorm2D as-is",
            "running_stats", 1e-1, bn_port("paddle", bn_momentum=0.9)),
    Pitfall("bn-momentum-as-is", "batchnorm", "flax", "torch's momentum=0.1 passed as Flax's momentum",
            "running_stats", 1e-1, bn_port("flax", bn_momentum=0.9)),
    Pitfall("running-var-biased", "batchnorm", "paddle", "running variance fed the biased batch variance",
            "running_stats", 1e-2, bn_port("paddle", bn_running_var="native")),
    Pitfall("running-var-biased", "batchnorm", "flax", "running variance fed the biased batch variance",
            "running_stats", 1e-2, bn_port("flax", bn_running_var="native")),
)


# ---------------------------------------------------------------- per-framework measurement

def demos(framework: str) -> ModuleType:
    """The framework's demonstration module (frameworks/<framework>/demos.py)."""
    return load_framework(framework, "demos")


def time_calls(call: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of each call; every call returns host NumPy, so device work is included."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def compile_cost(framework: str, spec: ResNetSpec, batch: int, repeats: int = 5) -> dict[str, float]:
    """First compiled call vs the steady state (median), and the steady eager call for scale."""
    x = np.random.default_rng(0).normal(size=(batch, spec.in_channels, spec.input_size, spec.input_size))
    eager, compiled = demos(framework).forward_calls(spec, random_weights(spec), x.astype(np.float32))
    first, *steady = time_calls(compiled, repeats + 1)
    eager_times = time_calls(eager, repeats + 1)[1:]  # the first eager call warms caches too
    return {"first_call_s": first, "steady_call_s": statistics.median(steady),
            "eager_call_s": statistics.median(eager_times)}


def bf16_error(framework: str, bench: Bench) -> float:
    """Relative logits error of the framework's bf16 path against the float64 oracle."""
    logits = demos(framework).bf16_run(bench.spec, bench.weights, bench.x)
    return bench.error({"logits": logits}, "eval")


def measure_framework(framework: str) -> dict[str, Any]:
    """Every figure of one framework (run in its own process by `measure`)."""
    bench = Bench()
    pitfalls = []
    for p in PITFALLS:
        if p.framework == framework:
            naive, correct = p.errors(bench)
            pitfalls.append({"name": p.name, "topic": p.topic, "mistake": p.mistake, "check": p.check,
                             "naive": naive, "correct": correct, "threshold": p.threshold,
                             "tolerance": p.tolerance})
    compiles = [{"model": name, "batch": batch, **compile_cost(framework, spec, batch)}
                for name, spec, batch in COMPILE_MODELS]
    return {"pitfalls": pitfalls, "compile": compiles, "bf16_error": bf16_error(framework, bench),
            "versions": {name: version(name) for name in DISTRIBUTIONS[framework]}}


# ---------------------------------------------------------------- all frameworks -> JSON

def measure(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Run every framework in its own process and write the figures the guide quotes to `path`."""
    load_average = round(os.getloadavg()[0], 1)
    per_framework = {}
    for framework in FRAMEWORKS:
        print(f"explain --measure: {framework} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as cache:  # cold Inductor cache: 'first call' on a fresh machine
            try:
                per_framework[framework] = process.call(f"{__name__}:measure_framework", framework,
                                                        env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
            except process.ProcessFailed as exc:
                raise UserError(f"measuring {framework} failed: {exc}") from None
    figures = {"about": _about(f"resnet-rosetta explain --measure {path}", load_average, per_framework),
               "tables": tables(per_framework)}
    atomic_write_text(path, json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return figures


def _about(command: str, load_average: float, per_framework: Mapping[str, Any]) -> dict[str, Any]:
    """How, where, when and with what the figures were measured."""
    versions = {"numpy": np.__version__}
    for result in per_framework.values():
        versions.update(result["versions"])
    return {"date": datetime.date.today().isoformat(), "command": command, "load_average": load_average,
            "machine": f"{host.describe()}, run on the CPU", "python": platform.python_version(),
            "versions": versions,
            "bench": f"{TINY.name} (resnet18 with depths {TINY.depths}, widths {TINY.widths}, {TINY.num_classes} "
                     f"classes), {TINY.input_size}x{TINY.input_size}, batch {BATCH}, random_weights(seed=0)"}


def tables(per_framework: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Topic name -> {columns, rows} of measured values, as the guide prints them."""
    pitfall_rows: dict[str, list[list[Any]]] = {}
    for framework, result in per_framework.items():
        for p in result["pitfalls"]:
            pitfall_rows.setdefault(p["topic"], []).append(
                [p["mistake"], framework, p["naive"], p["threshold"], p["correct"], p["tolerance"]])
    columns = ["naive port", "framework", "naive error", "claim: >", "correct port", "tolerance"]
    out = {topic: {"columns": columns, "rows": rows} for topic, rows in pitfall_rows.items()}
    out["pitfalls"] = {"columns": columns, "rows": [r for rows in pitfall_rows.values() for r in rows]}
    out["compilation"] = {
        "columns": ["framework", "model", "batch", "first call (s)", "steady call (s)", "eager call (s)"],
        "rows": [[fw, c["model"], c["batch"], c["first_call_s"], c["steady_call_s"], c["eager_call_s"]]
                 for fw, r in per_framework.items() for c in r["compile"]]}
    out["mixed-precision"] = {
        "columns": ["framework", "bf16 logits error vs float64 oracle"],
        "rows": [[fw, r["bf16_error"]] for fw, r in per_framework.items()]}
    return out
