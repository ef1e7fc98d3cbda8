"""common/inference.py, pure NumPy: the spec of any native state dict from its keys and shapes, in every
format of the rule table, presets named as such, and refusals that name what does not fit."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_rosetta.common import inference, rules
from resnet_rosetta.common.canonical import canonical_shapes, random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, SpecRegistry, get_spec

BASIC = ResNetSpec("tiny_basic", "basic", (1, 1), widths=(2, 4), stem_width=2, num_classes=3, in_channels=1)
# timm's resnet26d shape at a tiny width: bottleneck 2-2-2-2, deep stem, average-pool shortcuts
DEEP = ResNetSpec("x", "bottleneck", (2, 2, 2, 2), widths=(2, 4, 4, 8), stem_width=4, stem="deep",
                  downsample="avg", num_classes=5)
CUSTOM = [
    (DEEP, "resnet_bottleneck_2-2-2-2_deep_avgdown"),
    (DEEP.replace(stem="imagenet", downsample="conv", groups=2, width_per_group=128), "resnet_bottleneck_2-2-2-2"),
    (BASIC.replace(depths=(3, 1, 2), widths=(2, 4, 6), stem="small"), "resnet_basic_3-1-2_small"),
    (BASIC.replace(stem_width=6), "resnet_basic_1-1"),  # a projection in layer1.0: the stem is wider
]


def _holds(fmt: str, spec: ResNetSpec) -> bool:
    """Hugging Face's ResNet has only the 7x7 stem, conv shortcuts and groups=1."""
    return fmt != "hf" or (spec.stem, spec.downsample, spec.groups) == ("imagenet", "conv", 1)


@pytest.mark.parametrize("fmt, spec, name", [(f, s, n) for f in rules.RULE_FORMATS for s, n in CUSTOM if _holds(f, s)],
                         ids=[f"{f}-{n}" for f in rules.RULE_FORMATS for s, n in CUSTOM if _holds(f, s)])
def test_any_combination_is_inferred_in_every_format(fmt: str, spec: ResNetSpec, name: str) -> None:
    native = rules.to_native(random_weights(spec), spec, fmt)
    assert inference.infer_spec(native, fmt, "f") == spec.replace(name=name)


@pytest.mark.parametrize("fmt", ["torch", "paddleclas", "paddle"])
def test_presets_keep_their_name_and_input_size(fmt: str) -> None:
    for preset in ("resnet18", "resnet50d", "resnet18_small", "resnext50_32x4d"):
        spec = get_spec(preset).replace(num_classes=4, in_channels=2)
        zeros = {k: np.zeros(shape, np.float32) for k, shape in canonical_shapes(spec).items()}  # shapes are what counts
        assert inference.infer_spec(rules.to_native(zeros, spec, fmt), fmt, "f") == spec


def test_stage_depths_of_flat_numbering_split_at_each_shortcut() -> None:
    spec = get_spec("resnet50").replace(depths=(2, 3, 1, 2))
    native = rules.to_native(random_weights(spec.replace(widths=(2, 2, 2, 2))), spec.replace(widths=(2, 2, 2, 2)),
                             "paddleclas")
    assert inference.stage_depths(native, "paddleclas") == (2, 3, 1, 2)
    assert inference.stage_depths({"fc.weight": 0}, "torch") == ()


def test_one_matching_preset_names_it_two_ask_for_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = SpecRegistry()
    for spec in (BASIC, BASIC.replace(name="tiny_small_stem", stem="small")):
        registry.register(spec)
    monkeypatch.setattr(inference, "PRESETS", registry)
    data = BASIC.replace(num_classes=9)
    native = rules.to_native(random_weights(data), data, "flax")
    assert inference.infer_spec(native, "flax", "f") == data
    with pytest.raises(UserError, match=r"^f: keys and shapes match no known architecture \(no residual blocks "
                                        r"found in flax names\); pass --arch NAME$"):
        inference.infer_spec({"params/fc/bias": np.zeros(3)}, "flax", "f")
    registry.register(BASIC.replace(name="tiny_twin", bn_eps=1e-3))
    with pytest.raises(UserError, match=r"^f: matches several architectures \(tiny_basic, tiny_twin\); pass --arch NAME$"):
        inference.infer_spec(native, "flax", "f")


def test_layers_the_spec_cannot_express_are_named() -> None:
    spec = get_spec("resnet50").replace(widths=(2, 2, 2, 2), depths=(1, 1, 1, 1))
    native = rules.to_native(random_weights(spec), spec, "torch")
    native["layer1.0.se.fc1.weight"] = np.zeros((1, 8, 1, 1), np.float32)  # squeeze-excitation (timm seresnet)
    with pytest.raises(UserError, match=r"^f: keys match no ResNet the spec can express \(torch names, 1-1-1-1 "
                                        r"blocks\): unexpected keys layer1\.0\.se\.fc1\.weight$"):
        inference.infer_spec(native, "torch", "f")
    gn = {k: v for k, v in rules.to_native(random_weights(spec), spec, "torch").items() if "running" not in k}
    with pytest.raises(UserError, match=r"missing keys bn1\.running_mean, bn1\.running_var, "):  # group norm
        inference.infer_spec(gn, "torch", "f")


def test_paddleclas_first_shortcut_conv_is_refused_by_name() -> None:
    """PaddleClas' ResNet18/34 give block 0 a 1x1 conv shortcut though 64 channels stay 64."""
    spec = get_spec("resnet18").replace(widths=(2, 4, 4, 4), stem_width=2)
    native = rules.to_native(random_weights(spec), spec, "paddleclas")
    native["blocks.0.short.conv.weight"] = np.ones((2, 2, 1, 1), np.float32)
    for leaf in ("weight", "bias", "_mean", "_variance"):
        native[f"blocks.0.short.bn.{leaf}"] = np.ones(2, np.float32)
    with pytest.raises(UserError, match=r"^f: blocks\.0\.short\.conv\.weight: a 1x1 conv shortcut where the "
                                        r"block's shape does not change \(PaddleClas' use_first_short_conv"):
        inference.infer_spec(native, "paddleclas", "f")


@pytest.mark.parametrize("fmt", ["torch", "flax"])
def test_tensors_of_the_wrong_rank_are_a_user_error(fmt: str) -> None:
    native = rules.to_native(random_weights(BASIC), BASIC, fmt)
    table = rules.key_map(BASIC, fmt)
    for key, bad in (("layer1.0.conv2.weight", np.ones(3, np.float32)), ("fc.weight", np.float32(1.0)),
                     ("conv1.weight", np.ones((2, 3), np.float32))):
        broken = {**native, table[key][0]: bad}
        with pytest.raises(UserError, match="^f: "):
            inference.infer_spec(broken, fmt, "f")
