"""The residual block, side by side (`resnet-rosetta explain block`): every fact of guide/topics.py's 'block' topic, proved on
the frameworks as installed."""
from __future__ import annotations

from typing import Any

import pytest

from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY
from resnet_rosetta.guide.topics import BLOCK_CLASSES, get_topic

from guide_helpers import flax_modules


TINY50 = TINY.replace(name="tiny50", block="bottleneck", num_classes=10)
# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {"classes": BLOCK_CLASSES,
          "first_conv_index": {"torch": 1, "paddle": 0, "flax": 1},  # convK + bnK, K from 1; Paddle's convK from 0
          "shortcut": {"torch": ["downsample"], "paddle": ["short"], "flax": ["downsample_conv", "downsample_bn"]},
          "strided_conv": {"basic": 0, "bottleneck": 1}}  # which of the block's convs has stride 2


@pytest.mark.parametrize("spec", [TINY, TINY50], ids=lambda s: s.block)
def test_block_structure(spec: Any) -> None:
    names, first, shortcut = CLAIMS["classes"][spec.block], CLAIMS["first_conv_index"], CLAIMS["shortcut"]
    n_convs = 2 if spec.block == "basic" else 3
    strided = CLAIMS["strided_conv"][spec.block]
    strides = [2 if i == strided else 1 for i in range(n_convs)]

    block = TorchResNet(spec).layer2[0]
    assert type(block).__name__ == names["torch"]
    ks = range(first["torch"], first["torch"] + n_convs)
    assert all(hasattr(block, f"conv{k}") and hasattr(block, f"bn{k}") for k in ks)
    convs = [getattr(block, f"conv{k}") for k in ks]
    assert [c.stride[0] for c in convs] == strides
    assert convs[strided].kernel_size == (3, 3)
    assert all(hasattr(block, name) for name in shortcut["torch"])
    assert [type(m).__name__ for m in block.downsample] == ["Conv2d", "BatchNorm2d"]
    assert block.downsample[0].kernel_size == (1, 1)

    layer = getattr(PaddleResNet(spec), "bb_1_0")
    assert type(layer).__name__ == names["paddle"]
    ks = range(first["paddle"], first["paddle"] + n_convs)
    assert all(hasattr(layer, f"conv{k}") for k in ks)
    pairs = [getattr(layer, f"conv{k}") for k in ks]
    assert all(type(p).__name__ == "ConvBNLayer" and hasattr(p, "_batch_norm") for p in pairs)
    assert [p._conv._stride[0] for p in pairs] == strides
    assert list(pairs[strided]._conv._kernel_size) == [3, 3]
    assert all(hasattr(layer, name) for name in shortcut["paddle"])
    assert type(layer.short).__name__ == "ConvBNLayer" and list(layer.short._conv._kernel_size) == [1, 1]

    modules = flax_modules(spec)
    assert type(modules[("layer2_0",)]).__name__ == names["flax"]
    ks = range(first["flax"], first["flax"] + n_convs)
    assert all(("layer2_0", f"conv{k}") in modules and ("layer2_0", f"bn{k}") in modules for k in ks)
    flax_convs = [modules[("layer2_0", f"conv{k}")] for k in ks]
    assert [c.strides if isinstance(c.strides, int) else c.strides[0] for c in flax_convs] == strides
    assert tuple(flax_convs[strided].kernel_size) == (3, 3)
    assert all(("layer2_0", name) in modules for name in shortcut["flax"])

    # "v1.5" (stride on the 3x3, not the first 1x1) is a Bottleneck choice: never written on BasicBlock rows
    stride_row = next(r for r in get_topic("block").facts(spec) if r.label == "stride sits on")
    assert all(("v1.5" in stride_row.cell(fw)) == (spec.block == "bottleneck") for fw in names)
