"""Padding: explicit vs 'SAME' (`resnet-rosetta explain padding`): every fact of guide/topics.py's 'padding' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch
from flax import linen as nn


def test_same_padding_with_stride_2() -> None:
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        torch.nn.Conv2d(2, 3, 3, stride=2, padding="same")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 2, 8, 8)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    conv = lambda padding: paddle.nn.functional.conv2d(  # noqa: E731
        paddle.to_tensor(x), paddle.to_tensor(w), stride=2, padding=padding).numpy()
    np.testing.assert_array_equal(conv("SAME"), conv([0, 1, 0, 1]))  # top, bottom, left, right
    assert np.abs(conv("SAME") - conv(1)).max() > 1e-1
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    variables = {"params": {"kernel": jnp.asarray(w.transpose(2, 3, 1, 0))}}
    flax_conv = lambda padding: nn.Conv(3, (3, 3), (2, 2), padding=padding, use_bias=False).apply(  # noqa: E731
        variables, x_nhwc)
    np.testing.assert_array_equal(flax_conv("SAME"), flax_conv(((0, 1), (0, 1))))
    assert np.abs(flax_conv("SAME") - flax_conv(((1, 1), (1, 1)))).max() > 1e-1
