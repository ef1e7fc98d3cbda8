"""common/rules.py, pure NumPy on tiny specs: every native name of the docstring's table, each layout
transpose element by element, the strict checks' messages, and spec inference (fast, no framework)."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import canonical_shapes, random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec

# Two stages of one block: layer2.0 has a downsample shortcut, like every real preset.
BASIC = ResNetSpec("tiny_basic", "basic", (1, 1), widths=(2, 4), stem_width=2, num_classes=3, in_channels=1)
BOTTLENECK = ResNetSpec("tiny_bneck", "bottleneck", (2,), widths=(2,), stem_width=4, num_classes=5,
                        stem="small", groups=2, width_per_group=64)


def test_native_names_follow_the_table() -> None:
    expected = {
        "torch": ["conv1.weight", "bn1.running_var", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                  "layer2.0.downsample.1.running_mean", "layer2.0.bn2.weight", "fc.weight", "fc.bias"],
        "paddle": ["conv._conv.weight", "conv._batch_norm._variance", "bb_0_0.conv1._conv.weight",
                   "bb_1_0.short._conv.weight", "bb_1_0.short._batch_norm._mean",
                   "bb_1_0.conv1._batch_norm.weight", "out.weight", "out.bias"],
        "paddle-vision": ["conv1.weight", "bn1._variance", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                          "layer2.0.downsample.1._mean", "layer2.0.bn2.weight", "fc.weight", "fc.bias"],
        "flax": ["params/conv1/kernel", "batch_stats/bn1/var", "params/layer1_0/conv2/kernel",
                 "params/layer2_0/downsample_conv/kernel", "batch_stats/layer2_0/downsample_bn/mean",
                 "params/layer2_0/bn2/scale", "params/fc/kernel", "params/fc/bias"],
    }
    keys = ["conv1.weight", "bn1.running_var", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_mean", "layer2.0.bn2.weight", "fc.weight", "fc.bias"]
    for fmt, names in expected.items():
        table = rules.key_map(BASIC, fmt)
        assert [table[k][0] for k in keys] == names, fmt
        assert list(table) == list(canonical_shapes(BASIC))  # every key, in execution order
        assert table["bn1.bias"][0] == {"torch": "bn1.bias", "paddle": "conv._batch_norm.bias",
                                        "paddle-vision": "bn1.bias", "flax": "params/bn1/bias"}[fmt]
        assert table["bn1.running_mean"][0].endswith(("running_mean", "_mean", "/mean"))


def test_paddle_names_count_stages_from_zero() -> None:
    four = BASIC.replace(depths=(1, 1, 1, 1), widths=(2, 2, 2, 2))
    assert [rules.key_map(four, "paddle")[f"layer{s}.0.bn2.bias"][0] for s in (1, 2, 3, 4)] == [
        f"bb_{s}_0.conv1._batch_norm.bias" for s in (0, 1, 2, 3)]


def test_bottleneck_third_conv_and_blocks_by_name() -> None:
    assert rules.key_map(BOTTLENECK, "paddle")["layer1.1.bn3.running_var"][0] == "bb_0_1.conv2._batch_norm._variance"
    assert rules.key_map(BOTTLENECK, "flax")["layer1.1.conv3.weight"][0] == "params/layer1_1/conv3/kernel"
    assert [rules.native_module("layer3.1", f, BOTTLENECK) for f in rules.NATIVE_FORMATS] == [
        "layer3.1", "bb_2_1", "layer3.1", "layer3_1"]
    assert [rules.native_module(f"layer{s}.0", "paddle", BOTTLENECK) for s in (1, 2, 4)] == ["bb_0_0", "bb_1_0", "bb_3_0"]
    assert rules.native_module("fc", "flax", BOTTLENECK) == "fc"
    computed = ["".join(["f", "c"]), "".join(["conv", "1"]), "".join(["bn", "1"])]  # equal, not identical
    assert [rules.native_module(p, "paddle", BOTTLENECK) for p in computed] == ["out", "conv._conv", "conv._batch_norm"]
    with pytest.raises(UserError, match="unknown native format 'onnx'; known: torch, paddle, paddle-vision, flax, hf, paddleclas"):
        rules.native_module("fc", "onnx", BOTTLENECK)


@pytest.mark.parametrize("fmt", rules.NATIVE_FORMATS)
def test_layouts_move_every_element_and_round_trip_bit_exactly(fmt: str) -> None:
    weights = random_weights(BASIC, seed=1)
    table = rules.key_map(BASIC, fmt)
    native = rules.to_native(weights, BASIC, fmt)
    conv, fc = native[table["layer2.0.conv1.weight"][0]], native[table["fc.weight"][0]]
    w, f = weights["layer2.0.conv1.weight"], weights["fc.weight"]  # OIHW (4, 2, 3, 3), [out, in] (3, 4)
    if fmt == "flax":
        assert conv.shape == (3, 3, 2, 4) and conv[2, 1, 0, 3] == w[3, 0, 2, 1]
    else:
        assert conv.shape == w.shape and np.array_equal(conv, w)
    if fmt == "torch":
        assert np.array_equal(fc, f)
    else:
        assert fc.shape == (4, 3) and fc[1, 2] == f[2, 1] and fc.flags.c_contiguous
    assert conv.flags.c_contiguous
    back = rules.from_native(native, BASIC, fmt, "src")
    assert list(back) == list(weights)
    assert all(np.array_equal(back[k], weights[k]) and back[k].dtype == weights[k].dtype for k in weights)


@pytest.mark.parametrize("fmt, extra", [("torch", ["bn1.num_batches_tracked", "layer1.0.bn1.num_batches_tracked"]),
                                        ("paddle", ["StructuredToParameterName@@"]),
                                        ("paddle-vision", ["StructuredToParameterName@@"])])
def test_bookkeeping_tensors_are_ignored(fmt: str, extra: list[str]) -> None:
    native = {**rules.to_native(random_weights(BASIC), BASIC, fmt), **{k: np.zeros(()) for k in extra}}
    assert set(rules.from_native(native, BASIC, fmt, "src")) == set(canonical_shapes(BASIC))


@pytest.mark.parametrize("fmt, extra", [("torch", "num_batches_tracked_x"), ("torch", "bn1.num_batches"),
                                        ("paddle", "StructuredToParameterName@@x"),
                                        ("flax", "params/bn1/num_batches_tracked"), ("flax", "x")])
def test_near_misses_of_the_ignored_names_are_unexpected(fmt: str, extra: str) -> None:
    native = {**rules.to_native(random_weights(BASIC), BASIC, fmt), extra: np.zeros(1)}
    with pytest.raises(UserError, match=f"src: {fmt} weights do not match tiny_basic: unexpected keys {extra}$"):
        rules.from_native(native, BASIC, fmt, "src")


def test_strict_check_names_missing_then_unexpected_keys() -> None:
    native = rules.to_native(random_weights(BASIC), BASIC, "paddle")
    for key in ["bb_0_0.conv0._conv.weight", "out.bias", "out.weight", "bb_1_0.short._conv.weight"]:
        del native[key]
    conv1 = native.pop("conv._conv.weight")
    native["zz"] = native["aa"] = np.zeros(1)
    with pytest.raises(UserError, match=r"^f: paddle weights do not match tiny_basic: missing keys conv\._conv\.weight, "
                                        r"bb_0_0\.conv0\._conv\.weight, bb_1_0\.short\._conv\.weight, out\.weight "
                                        r"and 1 more; unexpected keys aa, zz$"):
        rules.from_native(native, BASIC, "paddle", "f")
    del native["zz"], native["aa"]
    native["conv._conv.weight"] = conv1
    with pytest.raises(UserError, match=r"do not match tiny_basic: missing keys bb_0_0\.conv0\._conv\.weight, "
                                        r"bb_1_0\.short\._conv\.weight, out\.weight, out\.bias$"):
        rules.from_native(native, BASIC, "paddle", "f")


@pytest.mark.parametrize("fmt, key, bad, message", [
    ("flax", "params/conv1/kernel", np.zeros((3, 3, 1, 2)), r"expected shape \(7, 7, 1, 2\), found \(3, 3, 1, 2\)"),
    ("flax", "params/conv1/kernel", np.zeros((2, 49)), r"expected shape \(7, 7, 1, 2\), found \(2, 49\)"),
    ("flax", "params/conv1/kernel", np.zeros((7, 7, 1, 2, 1)), r"expected shape \(7, 7, 1, 2\), found \(7, 7, 1, 2, 1\)"),
    ("paddle", "out.weight", np.zeros((3, 4)), r"expected shape \(4, 3\), found \(3, 4\)"),
    ("torch", "bn1.running_var", np.zeros(3), r"expected shape \(2,\), found \(3,\)"),
])
def test_misshapen_tensor_is_named_in_native_layout(fmt: str, key: str, bad: np.ndarray, message: str) -> None:
    native = rules.to_native(random_weights(BASIC), BASIC, fmt)
    native[key] = bad
    with pytest.raises(UserError, match=f"^src: key {key}: {message} \\(architecture tiny_basic\\)$"):
        rules.from_native(native, BASIC, fmt, "src")


def test_paddle_flavour_is_told_by_the_stem_name() -> None:
    assert rules.detect_paddle_flavour({"conv._conv.weight": 0, "conv1.weight": 0}) == "paddle"
    assert rules.detect_paddle_flavour({"conv1.weight": 0}) == "paddle-vision"
    keys = {f"k{i}": 0 for i in range(6)}
    with pytest.raises(UserError, match=r"^x\.pdparams: holds neither .*; found keys k0, k1, k2, k3$"):
        rules.detect_paddle_flavour(keys, "x.pdparams")


@pytest.mark.parametrize("fmt", rules.NATIVE_FORMATS)
def test_fit_to_tensors_reads_classes_and_input_channels(fmt: str) -> None:
    data = BASIC.replace(num_classes=7, in_channels=5)
    native = rules.to_native(random_weights(data), data, fmt)
    assert rules.fit_to_tensors(BASIC, native, fmt) == data
    assert rules.fit_to_tensors(BASIC, native, "".join(fmt)) == data  # a computed format name: equal, not identical
    table = rules.key_map(BASIC, fmt)
    for drop in ("fc.bias", "conv1.weight"):
        assert rules.fit_to_tensors(BASIC, {k: v for k, v in native.items() if k != table[drop][0]}, fmt) is None
    for shape in ((2, 5, 7), (2, 5, 7, 7, 1)):
        native[table["conv1.weight"][0]] = np.zeros(shape)
        assert rules.fit_to_tensors(BASIC, native, fmt) is None


def test_peer_layouts_name_what_the_peers_name() -> None:
    """Hugging Face's and PaddleClas' names, written out (the peers' own models check them in tests/frameworks)."""
    hf, clas = rules.key_map(BASIC, "hf"), rules.key_map(BASIC.replace(depths=(2, 1)), "paddleclas")
    assert [hf[k][0] for k in ("conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight",
                               "layer2.0.downsample.1.bias", "layer1.0.bn2.running_mean", "fc.weight")] == [
        "resnet.embedder.embedder.convolution.weight", "resnet.embedder.embedder.normalization.running_var",
        "resnet.encoder.stages.1.layers.0.shortcut.convolution.weight",
        "resnet.encoder.stages.1.layers.0.shortcut.normalization.bias",
        "resnet.encoder.stages.0.layers.0.layer.1.normalization.running_mean", "classifier.1.weight"]
    assert [clas[k][0] for k in ("conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight",
                                 "layer1.1.bn2.bias", "fc.weight")] == [
        "stem.0.conv.weight", "stem.0.bn._variance", "blocks.2.short.conv.weight", "blocks.1.conv1.bn.bias",
        "fc.weight"]
    deep = BASIC.replace(stem="deep", downsample="avg")
    assert [rules.key_map(deep, "paddleclas")[k][0] for k in ("conv1.3.weight", "bn1.weight",
                                                              "layer2.0.downsample.1.weight")] == [
        "stem.1.conv.weight", "stem.2.bn.weight", "blocks.1.short.conv.weight"]
    assert rules.to_native(random_weights(BASIC), BASIC, "paddleclas")["fc.weight"].shape == (4, 3)  # [in, out]
    with pytest.raises(UserError, match="Hugging Face's ResNet has only the 7x7 stem"):
        rules.key_map(deep, "hf")


def test_stagewise_feeds_each_stages_first_block_and_the_classifier_in_the_layouts_names() -> None:
    spec = BOTTLENECK.replace(depths=(2, 1), widths=(2, 2))
    assert rules.feed_sites(spec, "torch") == {"layer1.0": "stem", "layer2.0": "layer1", "fc": "pooled"}
    assert rules.feed_sites(spec, "paddle") == {"bb_0_0": "stem", "bb_1_0": "layer1", "out": "pooled"}
    assert rules.feed_sites(spec, "flax") == {"layer1_0": "stem", "layer2_0": "layer1", "fc": "pooled"}
