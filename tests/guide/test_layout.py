"""Tensor layout (`resnet-rosetta explain layout`): every fact of guide/topics.py's 'layout' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import paddle
import torch
from flax import errors as flax_errors
from flax import traverse_util

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks.flax import adapter as flax_adapter
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY, Bench

from guide_helpers import flax_shapes

# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {"activations": {"torch": "NCHW", "paddle": "NCHW", "flax": "NHWC"},
          "flax_boundary_axes": {"in": (0, 2, 3, 1), "out": (0, 3, 1, 2)},
          "flax_rejects_nchw": True}


def shape_in(layout: str, **sizes: int) -> tuple[int, ...]:
    """The shape of `layout` (e.g. "NHWC") given each letter's size."""
    return tuple(sizes[letter] for letter in layout)


def test_activation_layout(bench: Bench) -> None:
    x = bench.x
    torch_stages = TorchResNet(TINY).eval().forward_stages(torch.from_numpy(x))
    paddle_model = PaddleResNet(TINY)
    paddle_model.eval()
    paddle_stages = paddle_model.forward_stages(paddle.to_tensor(x))
    variables = traverse_util.unflatten_dict(flax_shapes(TINY), sep="/")
    _, flax_stages = jax.eval_shape(FlaxResNet(TINY).apply, variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    sizes = {"N": len(x), "C": TINY.widths[1], "H": TINY.input_size // 8, "W": TINY.input_size // 8}
    assert sizes["C"] != sizes["H"]  # layer2: 16 channels, 4x4, so that a swapped layout shows
    layout = CLAIMS["activations"]
    assert tuple(torch_stages["layer2"].shape) == shape_in(layout["torch"], **sizes)
    assert tuple(paddle_stages["layer2"].shape) == shape_in(layout["paddle"], **sizes)
    assert flax_stages["layer2"].shape == shape_in(layout["flax"], **sizes)
    # the Flax adapter converts at its boundary: NCHW in, NCHW out, equal to the oracle
    axes = CLAIMS["flax_boundary_axes"]
    np.testing.assert_array_equal(flax_adapter._to_nhwc(x), np.transpose(x, axes["in"]))
    nhwc = np.transpose(x, (0, 2, 3, 1))
    np.testing.assert_array_equal(flax_adapter._to_nchw(nhwc), np.transpose(nhwc, axes["out"]))
    adapter = bench.adapter("flax")
    adapter.load(bench.weights)
    out = adapter.forward(x)
    assert out["layer2"].shape == shape_in("NCHW", **sizes)
    assert compare(out["logits"], bench.eval_reference["logits"], 0).max_rel < tolerance("eval")


def test_flax_rejects_nchw(bench: Bench) -> None:
    adapter = bench.adapter("flax")
    try:
        adapter.model.apply(adapter.variables, jnp.asarray(bench.x))
        rejected = False
    except flax_errors.ScopeParamShapeError as e:
        rejected = "conv1" in str(e)
    assert rejected == CLAIMS["flax_rejects_nchw"]
