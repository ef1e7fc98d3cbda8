"""Pitfalls: naive ports of canonical (torchvision) weights, measured against the float64 oracle.

A pitfall is a real mistake on the way from canonical weights to a framework. Its naive port runs
this repository's model with one convention ignored; its correct port runs the model as shipped.
Both are compared with the oracle, relative to the reference's max magnitude (common/tolerance.py).
tests/guide/test_pitfalls.py runs the same functions and asserts the claims.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import Weights, is_buffer, random_weights
from resnet_rosetta.common.oracle import Oracle
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import load as load_framework

# Small enough for a test, big enough that every stage runs: one basic block per stage, 32x32 input,
# batch 4, and a square classifier (32 -> 32) so that an un-transposed Linear loads without a shape error.
TINY = get_spec("resnet18").replace(name="tiny10", depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_width=8,
                                    num_classes=32, input_size=32)
BATCH = 4

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
    with load_framework("flax", "demos").same_padding_everywhere():
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
