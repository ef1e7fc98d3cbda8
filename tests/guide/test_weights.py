"""Conv and Linear weight layouts (`resnet-rosetta explain weights`): every fact of guide/topics.py's 'weights' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.guide.pitfalls import TINY

from guide_helpers import native_state


def test_native_weight_layouts() -> None:
    spec = TINY.replace(num_classes=10)  # layer2.0.conv1: 8 -> 16 channels; fc: 32 -> 10
    out, inp = 16, 8
    torch_state, paddle_state, flax_state = (native_state(fw, spec) for fw in FRAMEWORKS)
    assert torch_state["layer2.0.conv1.weight"].shape == (out, inp, 3, 3)
    assert paddle_state["bb_1_0.conv0._conv.weight"].shape == (out, inp, 3, 3)
    assert flax_state["params/layer2_0/conv1/kernel"].shape == (3, 3, inp, out)
    assert torch_state["fc.weight"].shape == (10, 32)
    assert paddle_state["out.weight"].shape == (32, 10)
    assert flax_state["params/fc/kernel"].shape == (32, 10)
    # y = x W^T + b in torch, y = x W + b in Paddle
    x = np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(10, 32)).astype(np.float32)
    linear = paddle.nn.Linear(32, 10)
    linear.weight.set_value(w.T)
    linear.bias.set_value(np.zeros(10, np.float32))
    np.testing.assert_allclose(linear(paddle.to_tensor(x)).numpy(), x @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w)).numpy(),
                               x @ w.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", rules.NATIVE_FORMATS)
def test_rules_round_trip_exactly(fmt: str) -> None:
    weights = random_weights(TINY)
    native = rules.to_native(weights, TINY, fmt)
    back = rules.from_native(native, TINY, fmt, "test")
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    conv = rules.key_map(TINY, fmt)["layer2.0.conv1.weight"][1]
    fc = rules.key_map(TINY, fmt)["fc.weight"][1]
    a = np.arange(16 * 8 * 9).reshape(16, 8, 3, 3)
    expected_conv = a.transpose(2, 3, 1, 0) if fmt == "flax" else a
    assert np.array_equal(conv(a), expected_conv)
    assert np.array_equal(fc(a[:, :, 0, 0]), a[:, :, 0, 0] if fmt == "torch" else a[:, :, 0, 0].T)


@pytest.mark.parametrize("fmt", ["paddle", "flax"])
def test_untransposed_linear_is_refused(fmt: str) -> None:
    spec = TINY.replace(num_classes=10)
    weights = random_weights(spec)
    native = rules.to_native(weights, spec, fmt)
    native[rules.key_map(spec, fmt)["fc.weight"][0]] = weights["fc.weight"]  # [out, in], not transposed
    with pytest.raises(UserError, match="expected shape"):
        rules.from_native(native, spec, fmt, "naive port")
