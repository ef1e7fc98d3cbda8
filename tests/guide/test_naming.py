"""Parameter and buffer naming (`resnet-rosetta explain naming`): every fact of guide/topics.py's 'naming' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import pytest
from flax import traverse_util

from resnet_rosetta.common import rules
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY

from guide_helpers import flax_shapes, native_state


CLAIMED_NAMES = {
    "conv1.weight": {"torch": "conv1.weight", "paddle": "conv._conv.weight", "flax": "params/conv1/kernel"},
    "layer2.0.downsample.1.running_var": {"torch": "layer2.0.downsample.1.running_var",
                                          "paddle": "bb_1_0.short._batch_norm._variance",
                                          "flax": "batch_stats/layer2_0/downsample_bn/var"},
    "fc.weight": {"torch": "fc.weight", "paddle": "out.weight", "flax": "params/fc/kernel"},
    "fc.bias": {"torch": "fc.bias", "paddle": "out.bias", "flax": "params/fc/bias"},
}


CLAIMS = {"names": CLAIMED_NAMES, "num_batches_tracked": {"torch": True, "paddle": False, "flax": False},
          "paddle_vision_names": ["conv1.weight", "layer2.0.downsample.1._variance", "fc.weight", "fc.bias"],
          "running_stats_are_parameters": {"torch": False, "paddle": True, "flax": False}}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_native_names(framework: str) -> None:
    state = native_state(framework)
    table = rules.key_map(TINY, framework)
    for canonical, names in CLAIMS["names"].items():
        assert names[framework] in state and table[canonical][0] == names[framework]
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert (len(counters) > 0) == CLAIMS["num_batches_tracked"][framework]


def test_paddle_vision_names() -> None:
    """paddle.vision's ResNet (not this repository's classic-source model) uses torchvision's names."""
    import paddle  # noqa: PLC0415 (only this test needs paddle.vision)

    names = set(paddle.vision.models.resnet18(num_classes=10).state_dict())
    assert set(CLAIMS["paddle_vision_names"]) <= names
    assert not any(k.startswith(("conv._conv", "bb_", "out.")) for k in names)


def test_where_running_statistics_live() -> None:
    is_parameter = CLAIMS["running_stats_are_parameters"]
    model = TorchResNet(TINY)
    assert "bn1.running_mean" in dict(model.state_dict())
    assert ("bn1.running_mean" in dict(model.named_parameters())) == is_parameter["torch"]
    assert ("bn1.running_mean" in dict(model.named_buffers())) != is_parameter["torch"]
    params = dict(PaddleResNet(TINY).named_parameters())
    assert ("conv._batch_norm._mean" in params) == is_parameter["paddle"]
    assert params["conv._batch_norm._mean"].stop_gradient and params["conv._batch_norm._variance"].stop_gradient
    variables = traverse_util.unflatten_dict(flax_shapes(TINY), sep="/")
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["batch_stats"]["bn1"]) == {"mean", "var"}
    assert ("mean" in variables["params"]["bn1"]) == is_parameter["flax"]
