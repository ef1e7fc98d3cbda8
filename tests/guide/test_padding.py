"""Padding: explicit vs 'SAME' (`resnet-rosetta explain padding`): every fact of guide/topics.py's 'padding' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import paddle
import torch
from flax import linen as nn


CLAIMS = {"default_output": {"torch": 6, "paddle": 6, "flax": 8},  # 3x3 conv, 8x8 input, padding not given
          "torch_refuses_strided_same": True,
          "strided_same_pads": {"paddle": ((0, 1), (0, 1)), "flax": ((0, 1), (0, 1))}}  # (top, bottom), (left, right)


def test_default_padding() -> None:
    """Leave `padding` out of a 3x3 conv on an 8x8 input: PyTorch and Paddle give 6x6, Flax 8x8 ('SAME')."""
    x = np.ones((1, 2, 8, 8), np.float32)
    size = CLAIMS["default_output"]
    assert tuple(torch.nn.Conv2d(2, 3, 3)(torch.from_numpy(x)).shape) == (1, 3, size["torch"], size["torch"])
    assert tuple(paddle.nn.Conv2D(2, 3, 3)(paddle.to_tensor(x)).shape) == (1, 3, size["paddle"], size["paddle"])
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    conv = nn.Conv(3, (3, 3))
    y = conv.apply(conv.init(jax.random.key(0), x_nhwc), x_nhwc)
    assert y.shape == (1, size["flax"], size["flax"], 3)
    variables = conv.init(jax.random.key(0), x_nhwc)
    np.testing.assert_array_equal(y, nn.Conv(3, (3, 3), padding="SAME").apply(variables, x_nhwc))


def test_same_padding_with_stride_2() -> None:
    try:
        torch.nn.Conv2d(2, 3, 3, stride=2, padding="same")
        refused = False
    except ValueError as e:
        refused = "padding='same' is not supported for strided convolutions" in str(e)
    assert refused == CLAIMS["torch_refuses_strided_same"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 2, 8, 8)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    conv = lambda padding: paddle.nn.functional.conv2d(  # noqa: E731
        paddle.to_tensor(x), paddle.to_tensor(w), stride=2, padding=padding).numpy()
    (top, bottom), (left, right) = CLAIMS["strided_same_pads"]["paddle"]
    np.testing.assert_array_equal(conv("SAME"), conv([top, bottom, left, right]))
    assert np.abs(conv("SAME") - conv(1)).max() > 1e-1
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    variables = {"params": {"kernel": jnp.asarray(w.transpose(2, 3, 1, 0))}}
    flax_conv = lambda padding: nn.Conv(3, (3, 3), (2, 2), padding=padding, use_bias=False).apply(  # noqa: E731
        variables, x_nhwc)
    np.testing.assert_array_equal(flax_conv("SAME"), flax_conv(CLAIMS["strided_same_pads"]["flax"]))
    assert np.abs(flax_conv("SAME") - flax_conv(((1, 1), (1, 1)))).max() > 1e-1
