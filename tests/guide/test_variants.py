"""ResNet variants and their names (`resnet-rosetta explain variants`): every fact of guide/topics.py's
'variants' topic, proved on the peers as installed (timm, transformers, PaddleClas' own ResNet file,
torchvision, paddle.vision: models built with random weights, their state_dict keys read) and on this
repository's rule table (common/rules.py) and models. Peers are built once per process (cached), so
test_flipped_claims.py reruns these tests cheaply."""
from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest
import torch
import torchvision

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import canonical_shapes
from resnet_rosetta.common.spec import ResNetSpec, get_spec, stem_convs
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet

from guide_helpers import flax_modules, native_state

NARROW = (8, 16, 32, 64)  # names do not depend on widths: every net here is narrow where the peer allows it
SPECS = {"plain": get_spec("resnet50").replace(widths=NARROW, stem_width=8, num_classes=10),
         "d": get_spec("resnet50d").replace(widths=NARROW, stem_width=8, num_classes=10)}
# peer -> (the layout it is built in, the rule table's format for it)
PEERS = {"torchvision": ("plain", "torch"), "timm": ("plain", "torch"), "timm-d": ("d", "torch"),
         "hf": ("plain", "hf"), "paddle.vision": ("plain", "paddle-vision"), "paddleclas": ("plain", "paddleclas"),
         "paddleclas-vd": ("d", "paddleclas"), "classic": ("plain", "paddle"), "classic-vd": ("d", "paddle"),
         "flax": ("plain", "flax"), "flax-d": ("d", "flax")}
# fact -> layout -> the canonical keys whose native names the fact claims, in order
CANONICAL = {
    "stem": {"plain": ["conv1.weight", "bn1.running_var"]},
    "deep_stem": {"d": ["conv1.0.weight", "conv1.1.running_var", "conv1.3.weight", "conv1.6.weight", "bn1.weight"]},
    "first_block": {"plain": ["layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer1.0.conv3.weight"]},
    "shortcut": {"plain": ["layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var"],
                 "d": ["layer2.0.downsample.1.weight", "layer2.0.downsample.2.running_var"]},
    "classifier": {"plain": ["fc.weight", "fc.bias"]},
}
_HF_L = "resnet.encoder.stages.{}.layers.0."
CLAIMS = {
    "names": {
        "stem": {"torchvision": ["conv1.weight", "bn1.running_var"], "timm": ["conv1.weight", "bn1.running_var"],
                 "hf": ["resnet.embedder.embedder.convolution.weight",
                        "resnet.embedder.embedder.normalization.running_var"],
                 "paddle.vision": ["conv1.weight", "bn1._variance"],
                 "paddleclas": ["stem.0.conv.weight", "stem.0.bn._variance"],
                 "classic": ["conv._conv.weight", "conv._batch_norm._variance"],
                 "flax": ["params/conv1/kernel", "batch_stats/bn1/var"]},
        "deep_stem": {"timm-d": ["conv1.0.weight", "conv1.1.running_var", "conv1.3.weight", "conv1.6.weight",
                                 "bn1.weight"],
                      "paddleclas-vd": ["stem.0.conv.weight", "stem.0.bn._variance", "stem.1.conv.weight",
                                        "stem.2.conv.weight", "stem.2.bn.weight"],
                      "classic-vd": ["conv1_1._conv.weight", "conv1_1._batch_norm._variance", "conv1_2._conv.weight",
                                     "conv1_3._conv.weight", "conv1_3._batch_norm.weight"],
                      "flax-d": ["params/conv1_0/kernel", "batch_stats/conv1_1/var", "params/conv1_3/kernel",
                                 "params/conv1_6/kernel", "params/bn1/scale"]},
        "first_block": {
            "torchvision": ["layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer1.0.conv3.weight"],
            "timm": ["layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer1.0.conv3.weight"],
            "hf": [_HF_L.format(0) + f"layer.{k}.convolution.weight" for k in range(3)],
            "paddle.vision": ["layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer1.0.conv3.weight"],
            "paddleclas": ["blocks.0.conv0.conv.weight", "blocks.0.conv1.conv.weight", "blocks.0.conv2.conv.weight"],
            "classic": ["bb_0_0.conv0._conv.weight", "bb_0_0.conv1._conv.weight", "bb_0_0.conv2._conv.weight"],
            "flax": ["params/layer1_0/conv1/kernel", "params/layer1_0/conv2/kernel", "params/layer1_0/conv3/kernel"]},
        "shortcut": {
            "torchvision": ["layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var"],
            "timm": ["layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var"],
            "timm-d": ["layer2.0.downsample.1.weight", "layer2.0.downsample.2.running_var"],
            "hf": [_HF_L.format(1) + "shortcut.convolution.weight", _HF_L.format(1) + "shortcut.normalization.running_var"],
            "paddle.vision": ["layer2.0.downsample.0.weight", "layer2.0.downsample.1._variance"],
            "paddleclas": ["blocks.3.short.conv.weight", "blocks.3.short.bn._variance"],
            "paddleclas-vd": ["blocks.3.short.conv.weight", "blocks.3.short.bn._variance"],
            "classic": ["bb_1_0.short._conv.weight", "bb_1_0.short._batch_norm._variance"],
            "classic-vd": ["bb_1_0.short._conv.weight", "bb_1_0.short._batch_norm._variance"],
            "flax": ["params/layer2_0/downsample_conv/kernel", "batch_stats/layer2_0/downsample_bn/var"],
            "flax-d": ["params/layer2_0/downsample_conv/kernel", "batch_stats/layer2_0/downsample_bn/var"]},
        "classifier": {"torchvision": ["fc.weight", "fc.bias"], "timm": ["fc.weight", "fc.bias"],
                       "hf": ["classifier.1.weight", "classifier.1.bias"],
                       "paddle.vision": ["fc.weight", "fc.bias"], "paddleclas": ["fc.weight", "fc.bias"],
                       "classic": ["out.weight", "out.bias"], "flax": ["params/fc/kernel", "params/fc/bias"]},
    },
    # which conv of layer2.0's bottleneck holds the stride 2: v1.5 "3x3" (the second), v1 "1x1" (the first)
    "strided_conv": {"torchvision": "3x3", "timm": "3x3", "hf": "3x3", "hf-v1": "1x1", "paddle.vision": "3x3",
                     "paddleclas": "3x3", "classic": "3x3", "flax": "3x3"},
    "hf_downsample_in_bottleneck_default": False,
    "deep_stem_widths": {"timm-c": [32, 32, 64], "timm-d": [32, 32, 64], "paddleclas-vd": [32, 32, 64],
                         "resnet50d": [32, 32, 64]},
    "stem_kernel": {"torchvision": 7, "hf": 7, "paddle.vision": 7, "paddleclas": 7, "timm-c": 3, "timm-d": 3,
                    "paddleclas-vd": 3},  # the first conv's kernel: 7x7 (one conv) or 3x3 (the deep stem)
    "pooled_shortcut": {"torchvision": False, "timm-c": False, "timm-d": True, "hf": False, "paddle.vision": False,
                        "paddleclas": False, "paddleclas-vd": True, "resnet50d": True},
}


@functools.cache
def _paddleclas() -> Any:
    """PaddleClas' own ResNet module, through the peer tests' loader (tests/frameworks/peer_helpers.py)."""
    if "peer_helpers" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "frameworks" / "peer_helpers.py"
        found = importlib.util.spec_from_file_location("peer_helpers", path)
        assert found is not None and found.loader is not None
        sys.modules["peer_helpers"] = module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
    return sys.modules["peer_helpers"].paddleclas_resnet()


def _hf(**config: Any) -> Any:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ResNetConfig(layer_type="bottleneck", depths=[1, 1, 1, 1], hidden_sizes=[32, 64, 128, 256],
                                    embedding_size=8, num_labels=10, **config)
    return transformers.ResNetForImageClassification(cfg)


@functools.cache
def peers() -> dict[str, Any]:
    """Each peer's model, random weights (built once per process). The peers are the test extra's: they
    are imported here, not at the top, so test_flipped_claims.py reads CLAIMS without them."""
    timm = pytest.importorskip("timm")
    tv = torchvision.models.resnet
    pv = paddle.vision.models.resnet
    return {"torchvision": tv.ResNet(tv.Bottleneck, [1, 1, 1, 1], num_classes=10),
            "timm": timm.create_model("resnet50", num_classes=10, channels=NARROW),
            "timm-c": timm.create_model("resnet50c", num_classes=10, channels=NARROW),
            "timm-d": timm.create_model("resnet50d", num_classes=10, channels=NARROW),
            "hf": _hf(), "hf-v1": _hf(downsample_in_bottleneck=True),
            "paddle.vision": pv.ResNet(pv.BottleneckBlock, 50, num_classes=10),
            "paddleclas": _paddleclas().ResNet50(class_num=10), "paddleclas-vd": _paddleclas().ResNet50_vd(class_num=10),
            "classic": PaddleResNet(SPECS["plain"]), "classic-vd": PaddleResNet(SPECS["d"])}


@functools.cache
def state_keys(peer: str) -> frozenset[str]:
    if peer in ("flax", "flax-d"):
        return frozenset(native_state("flax", SPECS["d" if peer == "flax-d" else "plain"]))
    return frozenset(peers()[peer].state_dict())


@functools.cache
def _key_map(layout: str, fmt: str) -> dict[str, str]:
    return {ck: nk for ck, (nk, _, _) in rules.key_map(SPECS[layout], fmt).items()}


def test_peer_names() -> None:
    """Each claimed name is in the peer's own state_dict, and the rule table maps the canonical key to it."""
    for fact, by_peer in CLAIMS["names"].items():
        assert {PEERS[p][0] for p in by_peer} == set(CANONICAL[fact]), fact
        for peer, names in by_peer.items():
            layout, fmt = PEERS[peer]
            canonical = CANONICAL[fact][layout]
            assert len(names) == len(canonical), (fact, peer)
            assert set(names) <= state_keys(peer), (fact, peer, sorted(set(names) - state_keys(peer)))
            assert [_key_map(layout, fmt)[c] for c in canonical] == names, (fact, peer)


@functools.cache
def _flax_plain_modules() -> dict[tuple[str, ...], Any]:
    return flax_modules(SPECS["plain"])


def _strided(strides: list[int]) -> str:
    """Which conv of a bottleneck (1x1, 3x3, 1x1) has stride 2: "1x1" (v1) or "3x3" (v1.5)."""
    assert sorted(strides) == [1, 1, 2], strides
    return {0: "1x1", 1: "3x3"}[strides.index(2)]


def test_stride_placement() -> None:
    m = peers()
    torch_style = {p: [m[p].layer2[0].conv1.stride[0], m[p].layer2[0].conv2.stride[0], m[p].layer2[0].conv3.stride[0]]
                   for p in ("torchvision", "timm")}
    hf = {p: [c.convolution.stride[0] for c in m[p].resnet.encoder.stages[1].layers[0].layer] for p in ("hf", "hf-v1")}
    block = m["paddle.vision"].layer2[0]
    paddle_style = {"paddle.vision": [block.conv1._stride[0], block.conv2._stride[0], block.conv3._stride[0]],
                    "paddleclas": [getattr(m["paddleclas"].blocks[3], f"conv{k}").conv._stride[0] for k in range(3)],
                    "classic": [getattr(m["classic"].bb_1_0, f"conv{k}")._conv._stride[0] for k in range(3)]}
    modules = _flax_plain_modules()
    flax_strides = [modules[("layer2_0", f"conv{k}")].strides for k in (1, 2, 3)]
    flax = {"flax": [s if isinstance(s, int) else s[0] for s in flax_strides]}
    found = {p: _strided(s) for p, s in {**torch_style, **hf, **paddle_style, **flax}.items()}
    assert found == CLAIMS["strided_conv"]
    config = pytest.importorskip("transformers").ResNetConfig()
    assert config.downsample_in_bottleneck == CLAIMS["hf_downsample_in_bottleneck_default"]


def _deep_stem_widths(spec: ResNetSpec) -> list[int]:
    return [c.out_channels for c in stem_convs(spec)]


def test_resnet_c_and_d() -> None:
    """ResNet-C: the 3x3 x3 stem (timm `resnet50c`, `resnet50d`, PaddleClas `ResNet50_vd`, our `resnet50d`);
    ResNet-D: the 2x2 average pool before a stride-1 shortcut conv (`d`, `vd`); plain nets have neither."""
    m = peers()
    widths = {p: [m[p].conv1[i].out_channels for i in (0, 3, 6)] for p in ("timm-c", "timm-d")}
    widths["paddleclas-vd"] = [s.conv._out_channels for s in m["paddleclas-vd"].stem.children()]
    widths["resnet50d"] = _deep_stem_widths(get_spec("resnet50d"))
    assert widths == CLAIMS["deep_stem_widths"]
    tv, hf, pv = m["torchvision"].conv1, m["hf"].resnet.embedder.embedder.convolution, m["paddle.vision"].conv1
    kernels = {"torchvision": tv.kernel_size[0], "hf": hf.kernel_size[0], "paddle.vision": pv._kernel_size[0]}
    kernels.update({p: m[p].stem[0].conv._kernel_size[0] for p in ("paddleclas", "paddleclas-vd")})
    kernels.update({p: m[p].conv1[0].kernel_size[0] for p in ("timm-c", "timm-d")})
    assert kernels == CLAIMS["stem_kernel"]
    # PaddleClas' ResNet50_vd is timm's resnet50d: the rule table maps every tensor of one onto the other's shape
    spec, state = get_spec("resnet50d").replace(num_classes=10), m["paddleclas-vd"].state_dict()
    table = rules.key_map(spec, "paddleclas")
    assert {nk for nk, _, _ in table.values()} == set(state)
    shapes = canonical_shapes(spec)
    assert all(tuple(state[nk].shape) == to_native(np.broadcast_to(np.float32(0), shapes[ck])).shape
               for ck, (nk, to_native, _) in table.items())
    assert all((get_spec(f"resnet{d}d").stem, get_spec(f"resnet{d}d").downsample) == ("deep", "avg")
               for d in (18, 34, 50, 101, 152))
    assert [m["timm-c"].conv1[i].stride[0] for i in (0, 3, 6)] == [2, 1, 1]
    pooled = {p: any(isinstance(x, torch.nn.AvgPool2d) for x in m[p].modules())
              for p in ("torchvision", "timm-c", "timm-d", "hf")}
    pooled["paddle.vision"] = any(isinstance(x, paddle.nn.AvgPool2D) for x in m["paddle.vision"].sublayers())
    pooled.update({p: m[p].blocks[3].short.is_vd_mode for p in ("paddleclas", "paddleclas-vd")})
    pooled["resnet50d"] = m["classic-vd"].bb_1_0.short.is_vd_mode
    assert pooled == CLAIMS["pooled_shortcut"]
    # timm's pooled shortcut conv has stride 1 (the pool strides), a plain one stride 2
    assert m["timm-d"].layer2[0].downsample[1].stride[0] == 1 and m["timm-c"].layer2[0].downsample[0].stride[0] == 2
