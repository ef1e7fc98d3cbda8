"""Tensor layout (`resnet-rosetta explain layout`): every fact of guide/topics.py's 'layout' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import paddle
import pytest
import torch
from flax import errors as flax_errors
from flax import traverse_util

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY, Bench

from guide_helpers import flax_shapes


def test_activation_layout(bench: Bench) -> None:
    x = bench.x
    torch_stages = TorchResNet(TINY).eval().forward_stages(torch.from_numpy(x))
    paddle_model = PaddleResNet(TINY)
    paddle_model.eval()
    paddle_stages = paddle_model.forward_stages(paddle.to_tensor(x))
    variables = traverse_util.unflatten_dict(flax_shapes(TINY), sep="/")
    _, flax_stages = jax.eval_shape(FlaxResNet(TINY).apply, variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    n, c, h, w = torch_stages["layer1"].shape
    assert (n, c) == (len(x), TINY.widths[0]) and h == w
    assert tuple(paddle_stages["layer1"].shape) == (n, c, h, w)
    assert flax_stages["layer1"].shape == (n, h, w, c)
    # the Flax adapter converts at its boundary: NCHW in, NCHW out, equal to the oracle
    adapter = bench.adapter("flax")
    adapter.load(bench.weights)
    out = adapter.forward(x)
    assert out["layer1"].shape == (n, c, h, w)
    assert compare(out["logits"], bench.eval_reference["logits"], 0).max_rel < tolerance("eval")


def test_flax_rejects_nchw(bench: Bench) -> None:
    adapter = bench.adapter("flax")
    with pytest.raises(flax_errors.ScopeParamShapeError, match="conv1"):
        adapter.model.apply(adapter.variables, jnp.asarray(bench.x))
