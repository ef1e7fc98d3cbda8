"""Initialization defaults (`resnet-rosetta explain init`): every fact of guide/topics.py's 'init' topic, proved on
the frameworks as installed."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from resnet_rosetta.common import rules
from resnet_rosetta.frameworks import FRAMEWORKS

from guide_helpers import INIT_SPEC, native_state


CLAIMS = {"grouped_fan_ignores_groups": {"torch": True, "paddle": True, "flax": True},  # see the rows
          "conv_fan": {"torch": "fan_out", "paddle": "fan_in", "flax": "fan_out"},
          "classifier_bias_zero": {"torch": False, "paddle": True, "flax": True},
          "classifier_weight": {"torch": "uniform", "paddle": "uniform", "flax": "normal"},
          "bn_init": {"weight": 1, "bias": 0, "running_mean": 0, "running_var": 1}}


def rel_std(a: np.ndarray, expected: float) -> float:
    return abs(float(np.std(a)) / expected - 1.0)


def _init_weights(framework: str, spec: Any) -> dict[str, np.ndarray]:
    """Canonical view of a freshly initialised model."""
    return rules.from_native(native_state(framework, spec, values=True), spec, framework, "fresh model")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_conv_init_scale(framework: str) -> None:
    w = _init_weights(framework, INIT_SPEC)["layer4.0.conv1.weight"]  # 3x3, 8 -> 32: fan_in 72, fan_out 288
    fan = w.shape[1] * 9 if CLAIMS["conv_fan"][framework] == "fan_in" else w.shape[0] * 9
    assert rel_std(w, np.sqrt(2.0 / fan)) < 0.05


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_grouped_conv_init(framework: str) -> None:
    """A depthwise 3x3 conv, 32 -> 32 channels in 32 groups: each filter sees 9 inputs (fan_in 9)."""
    channels, groups = 32, 32
    if framework == "torch":
        import torch  # noqa: PLC0415

        torch.manual_seed(0)
        w = torch.nn.Conv2d(channels, channels, 3, groups=groups, bias=False).weight
        torch.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")  # as the torch model does
        expected = np.sqrt(2.0 / (channels * 9))
    elif framework == "paddle":
        import paddle  # noqa: PLC0415

        paddle.seed(0)
        w = paddle.nn.Conv2D(channels, channels, 3, groups=groups, bias_attr=False).weight
        assert w.shape[1] == 1  # in/groups
        expected = np.sqrt(2.0 / (channels * 9))  # the whole input counted, not in/groups = 1
    else:
        import jax  # noqa: PLC0415

        from resnet_rosetta.frameworks.flax.model import conv_init  # noqa: PLC0415
        w = conv_init(jax.random.key(0), (3, 3, 1, channels))
        expected = np.sqrt(2.0 / (channels * 9))
    w = np.asarray(w.detach().numpy() if framework == "torch" else w.numpy() if framework == "paddle" else w)
    if not CLAIMS["grouped_fan_ignores_groups"][framework]:
        expected = np.sqrt(2.0 / 9)  # the per-group fan (in/groups or out/groups = 1, times 9)
    assert rel_std(w, expected) < 0.1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_classifier_init(framework: str) -> None:
    spec = INIT_SPEC
    weights = _init_weights(framework, spec)
    w, b = weights["fc.weight"], weights["fc.bias"]
    bound = 1.0 / np.sqrt(spec.feature_dim)
    if CLAIMS["classifier_weight"][framework] == "normal":  # lecun_normal: a (truncated) normal, std 1/sqrt(fan_in)
        assert rel_std(w, bound) < 0.1 and np.abs(w).max() > bound
    else:  # uniform in +-bound: std bound / sqrt(3)
        assert rel_std(w, bound / np.sqrt(3)) < 0.1 and np.abs(w).max() <= bound
    if not CLAIMS["classifier_bias_zero"][framework]:
        assert 0 < np.abs(b).max() <= bound
    else:
        assert not b.any()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bn_init(framework: str) -> None:
    weights = _init_weights(framework, INIT_SPEC)
    for name, value in CLAIMS["bn_init"].items():
        assert (weights[f"bn1.{name}"] == value).all(), name
