"""Initialization defaults (`resnet-rosetta explain init`): every fact of guide/topics.py's 'init' topic, proved on
the frameworks as installed."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from resnet_rosetta.common import rules
from resnet_rosetta.frameworks import FRAMEWORKS

from guide_helpers import INIT_SPEC, native_state


def rel_std(a: np.ndarray, expected: float) -> float:
    return abs(float(np.std(a)) / expected - 1.0)


def _init_weights(framework: str, spec: Any) -> dict[str, np.ndarray]:
    """Canonical view of a freshly initialised model."""
    return rules.from_native(native_state(framework, spec, values=True), spec, framework, "fresh model")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_conv_init_scale(framework: str) -> None:
    w = _init_weights(framework, INIT_SPEC)["layer4.0.conv1.weight"]  # 3x3, 8 -> 32: fan_in 72, fan_out 288
    fan = w.shape[1] * 9 if framework == "paddle" else w.shape[0] * 9
    assert rel_std(w, np.sqrt(2.0 / fan)) < 0.05


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_classifier_init(framework: str) -> None:
    spec = INIT_SPEC
    weights = _init_weights(framework, spec)
    w, b = weights["fc.weight"], weights["fc.bias"]
    bound = 1.0 / np.sqrt(spec.feature_dim)
    if framework == "flax":  # lecun_normal: a (truncated) normal with std 1/sqrt(fan_in)
        assert rel_std(w, bound) < 0.1 and np.abs(w).max() > bound
    else:  # uniform in +-bound: std bound / sqrt(3)
        assert rel_std(w, bound / np.sqrt(3)) < 0.1 and np.abs(w).max() <= bound
    if framework == "torch":
        assert 0 < np.abs(b).max() <= bound
    else:
        assert not b.any()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bn_init(framework: str) -> None:
    weights = _init_weights(framework, INIT_SPEC)
    assert (weights["bn1.weight"] == 1).all() and (weights["bn1.bias"] == 0).all()
    assert (weights["bn1.running_mean"] == 0).all() and (weights["bn1.running_var"] == 1).all()
