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


# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {"conv": {"torch": "OIHW", "paddle": "OIHW", "flax": "HWIO"},
          "linear": {"torch": "OI", "paddle": "IO", "flax": "IO"},
          "from_canonical": {"conv": {"torch": None, "paddle": None, "paddle-vision": None, "flax": (2, 3, 1, 0)},
                             "linear_transposed": {"torch": False, "paddle": True, "paddle-vision": True,
                                                   "flax": True}},
          "untransposed_linear_refused": {"paddle": True, "flax": True}}


def _shape(layout: str, out: int, inp: int, k: int = 3) -> tuple[int, ...]:
    sizes = {"O": out, "I": inp, "H": k, "W": k}
    return tuple(sizes[letter] for letter in layout)


def test_native_weight_layouts() -> None:
    spec = TINY.replace(num_classes=10)  # layer2.0.conv1: 8 -> 16 channels; fc: 32 -> 10
    out, inp = 16, 8
    state = dict(zip(FRAMEWORKS, (native_state(fw, spec) for fw in FRAMEWORKS)))
    conv, linear = CLAIMS["conv"], CLAIMS["linear"]
    assert state["torch"]["layer2.0.conv1.weight"].shape == _shape(conv["torch"], out, inp)
    assert state["paddle"]["bb_1_0.conv0._conv.weight"].shape == _shape(conv["paddle"], out, inp)
    assert state["flax"]["params/layer2_0/conv1/kernel"].shape == _shape(conv["flax"], out, inp)
    assert state["torch"]["fc.weight"].shape == _shape(linear["torch"], 10, 32)
    assert state["paddle"]["out.weight"].shape == _shape(linear["paddle"], 10, 32)
    assert state["flax"]["params/fc/kernel"].shape == _shape(linear["flax"], 10, 32)
    # y = x W^T + b in torch, y = x W + b in Paddle
    x = np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(10, 32)).astype(np.float32)
    paddle_linear = paddle.nn.Linear(32, 10)
    paddle_linear.weight.set_value(w.T)
    paddle_linear.bias.set_value(np.zeros(10, np.float32))
    np.testing.assert_allclose(paddle_linear(paddle.to_tensor(x)).numpy(), x @ w.T, rtol=1e-5, atol=1e-5)
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
    axes = CLAIMS["from_canonical"]["conv"][fmt]
    assert np.array_equal(conv(a), a if axes is None else a.transpose(axes))
    m = a[:, :, 0, 0]
    assert np.array_equal(fc(m), m.T if CLAIMS["from_canonical"]["linear_transposed"][fmt] else m)


@pytest.mark.parametrize("fmt", ["paddle", "flax"])
def test_untransposed_linear_is_refused(fmt: str) -> None:
    spec = TINY.replace(num_classes=10)
    weights = random_weights(spec)
    native = rules.to_native(weights, spec, fmt)
    native[rules.key_map(spec, fmt)["fc.weight"][0]] = weights["fc.weight"]  # [out, in], not transposed
    try:
        rules.from_native(native, spec, fmt, "naive port")
        refused = False
    except UserError as e:
        refused = "expected shape" in str(e)
    assert refused == CLAIMS["untransposed_linear_refused"][fmt]
