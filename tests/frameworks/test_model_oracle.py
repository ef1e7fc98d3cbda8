"""The three frameworks/*/model.py against the float64 oracle, in float64 (FP64_BOUND) so that any
wiring, stride, padding or batch-norm difference shows far above rounding: eval stage outputs, and
a train-mode step's loss, gradients and running statistics. Tiny specs (a second or two each, what
the mutation runs of docs/mutation.md execute against each model.py) that take between them every
option a model.py implements: basic and bottleneck blocks, groups, the imagenet, small and deep stems,
conv and average-pool shortcuts, the pool on an odd side of a non-square input (ceil mode, padding
left out of the average), each running-variance rule, BN momentum and eps."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.oracle import Oracle
from resnet_rosetta.common.precision import strict_spec
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS, load

# (spec, input height, width), sides chosen so that mutants show: a pooled shortcut sees an odd side (3;
# in deep_d 6x7 then 3x4, so that Flax's end padding x % 2 of each side differs from the other side's,
# from x ^ 2, x // 2 and the channels'), the max pool an even one (deep_d's 12x14: one more row of padding
# would add an output row); the last stage's output has a power-of-2 area, because Paddle 3.3's
# AdaptiveAvgPool2D backward scales by a float32 1 / (h * w) even in float64. BN momenta on both sides
# of 0.5 (Flax's and Paddle's weight of the old value m: 1 % m is 1 - m above 0.5).
CASES = {
    "small": (ResNetSpec("t_small", "basic", (1, 1), widths=(2, 3), stem="small", stem_width=2, in_channels=2,
                         num_classes=3, input_size=6), 4, 3),
    "imagenet_d": (ResNetSpec("t_imnet_d", "basic", (1, 1), widths=(2, 3), stem_width=4, downsample="avg",
                              in_channels=1, num_classes=2, input_size=9, bn_running_var="biased",
                              bn_momentum=0.25), 9, 13),  # layer2 in: 3x4
    "deep_d": (ResNetSpec("t_deep_d", "bottleneck", (1, 1, 1), widths=(2, 2, 2), groups=2, stem="deep",
                          stem_width=4, downsample="avg", in_channels=2, num_classes=3, input_size=9,
                          bn_running_var="native", bn_momentum=0.75, bn_eps=0.1), 24, 28),
    "imagenet": (ResNetSpec("t_imnet", "bottleneck", (1, 1), widths=(2, 2), groups=2, stem_width=4,
                            in_channels=1, num_classes=2, input_size=9, bn_running_var="biased"), 9, 9),
}
# Flax compiles each spec (seconds): two specs take every branch of its model.py (its stems differ
# only in the numbers stem_convs gives, its basic block's shortcut is the bottleneck's)
RUNS = [(fw, case) for fw in FRAMEWORKS for case in CASES if fw != "flax" or case in ("small", "deep_d")]
# What "native" feeds the running variance on CPU: torch's own rule and linen's / Paddle's CPU kernel's
NATIVE = {"torch": "unbiased", "paddle": "biased", "flax": "biased"}


def _check(got: np.ndarray, want: np.ndarray, what: str) -> None:
    result = compare(got, want, tolerance("eval", "fp64"))
    assert result.passed, f"{what}: max abs {result.max_abs:.3g}, relative {result.max_rel:.3g}"


@pytest.mark.parametrize("fw,case", RUNS)
def test_model_matches_the_oracle_in_float64(fw: str, case: str) -> None:
    spec, h, w = CASES[case]
    # BN constants every framework holds exactly (Paddle: as float32); read back from JSON as a spec file
    # is, its strings equal to the literals in model.py but not the same objects
    spec = ResNetSpec.from_json(strict_spec(spec, "fp64").to_json())
    weights = random_weights(spec, seed=3)  # float32 values: exact however an adapter casts them
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, spec.in_channels, h, w)).astype(np.float32)  # as parity's inputs
    y = rng.integers(0, spec.num_classes, size=2)  # 2: Paddle's mean cross-entropy scales by a float32 1/n
    trainer = load(fw, "training").Trainer(spec, weights, lr=0.1, dtype="fp64")
    got = trainer.adapter.forward(x, train=False)
    want = Oracle(spec, weights).forward(x)
    assert list(got) == list(want)
    for name in want:
        _check(got[name], want[name], f"eval {name}")
    oracle = Oracle(spec.replace(bn_running_var=NATIVE[fw]) if spec.bn_running_var == "native" else spec, weights)
    want_loss, want_grads = oracle.loss_and_grads(x, y)
    loss, grads = trainer.loss_and_grads(x, y)
    assert abs(loss - want_loss) <= tolerance("loss", "fp64") * abs(want_loss)
    assert set(grads) == set(want_grads)
    for key, grad in want_grads.items():
        _check(grads[key], grad, f"gradient {key}")
    state = trainer.canonical_weights()
    stats = [k for k in weights if k.endswith(("running_mean", "running_var"))]
    for key in stats:
        _check(state[key], oracle.weights[key], f"running statistic {key}")
