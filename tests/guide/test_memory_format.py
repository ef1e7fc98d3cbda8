"""Memory layout and its cost (`resnet-rosetta explain memory-format`): every fact of guide/topics.py's
'memory-format' topic, proved on the frameworks as installed."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import paddle
import torch

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import load
from resnet_rosetta.frameworks.flax import adapter as flax_adapter
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.guide.pitfalls import TINY, Bench

from guide_helpers import flax_shapes

CLAIMS = {"paddle_transpose_is_a_view": True,
          "nhwc_tensor_shape": {"torch": "NCHW", "paddle": "NHWC"},  # once NHWC is asked for
          "jax_exposes_strides": False,
          "nhwc_weight_shape": {"torch": "OIHW", "paddle": "OIHW", "flax": "HWIO"}}


def _shape(layout: str, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[letter] for letter in layout)
X = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)


def test_asking_for_nhwc(bench: Bench) -> None:
    model = load("torch").Adapter(TINY, bench.weights).model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(bench.x)).numpy()
        cl_model, cl_x = torch_demos.channels_last(model, torch.from_numpy(bench.x))
        n, c, h, w = bench.x.shape
        shape = CLAIMS["nhwc_tensor_shape"]
        assert tuple(cl_x.shape) == _shape(shape["torch"], dict(N=n, C=c, H=h, W=w)) and cl_x.stride()[1] == 1
        assert cl_model.conv1(cl_x).is_contiguous(memory_format=torch.channels_last)  # kept downstream
        logits = cl_model(cl_x).numpy()
    assert compare(logits, expected, 0).max_rel < tolerance("eval")
    layer = paddle_demos.nhwc_conv_bn(3, 4)
    layer.eval()
    nchw = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, padding=1, bias_attr=False), paddle.nn.BatchNorm2D(4))
    nchw.set_state_dict(layer.state_dict())  # the same parameters, the same names and shapes
    nchw.eval()
    out = layer(paddle.to_tensor(X.transpose(0, 2, 3, 1)))
    assert tuple(out.shape) == _shape(shape["paddle"], dict(N=2, C=4, H=8, W=8))
    np.testing.assert_allclose(out.numpy().transpose(0, 3, 1, 2), nchw(paddle.to_tensor(X)).numpy(), atol=1e-5)
    assert hasattr(jnp.asarray(X), "strides") == CLAIMS["jax_exposes_strides"]  # XLA owns the physical layout


def test_nhwc_weights() -> None:
    layout = CLAIMS["nhwc_weight_shape"]
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    assert tuple(conv.weight.shape) == _shape(layout["torch"], dict(O=4, I=3, H=3, W=3))
    assert conv.weight.stride()[1] == 1  # NHWC strides
    assert tuple(paddle_demos.nhwc_conv_bn(3, 4)[0].weight.shape) == _shape(layout["paddle"], dict(O=4, I=3, H=3, W=3))
    kernel = flax_shapes(TINY)["params/conv1/kernel"].shape
    k = 7  # the ImageNet stem's 7x7 conv
    assert kernel == _shape(layout["flax"], dict(O=TINY.stem_width, I=TINY.in_channels, H=k, W=k))


def test_boundary_transposes() -> None:
    x = torch.from_numpy(X.copy())
    view = x.permute(0, 2, 3, 1)
    assert view.data_ptr() == x.data_ptr() and not view.is_contiguous()
    assert view.contiguous().data_ptr() != x.data_ptr()  # a copy of the whole batch
    p = paddle.to_tensor(X)
    t = paddle.transpose(p, [0, 2, 3, 1])
    view = CLAIMS["paddle_transpose_is_a_view"]
    assert t.is_contiguous() != view
    p.add_(paddle.ones_like(p))  # a view sees the change: no copy was made
    np.testing.assert_allclose(t.numpy(), X.transpose(0, 2, 3, 1) + (1 if view else 0), rtol=1e-6)
    copy = t.contiguous()
    assert copy.is_contiguous()
    n = X.copy()
    v = np.transpose(n, (0, 2, 3, 1))
    assert v.base is n and not v.flags.c_contiguous
    on_device = jnp.asarray(v)
    n += 1  # the device array was copied: unchanged
    np.testing.assert_array_equal(np.asarray(on_device), X.transpose(0, 2, 3, 1))
    converted = flax_adapter._to_nhwc(X)  # the adapter's boundary: one contiguous NHWC copy
    assert converted.flags.c_contiguous and not np.shares_memory(converted, X)
