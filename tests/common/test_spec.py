"""The spec, its presets and the counts `list` prints, checked against torchvision itself."""
from __future__ import annotations

import pytest
import torch
import torchvision

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.counting import macs, parameter_count
from resnet_rosetta.common.spec import PRESETS, ResNetSpec, SpecRegistry, block_plan, get_spec

TORCHVISION_PRESETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                       "wide_resnet50_2"]


def test_resnet50_counts_match_the_published_figures() -> None:
    spec = get_spec("resnet50")
    assert parameter_count(spec) == 25_557_032
    assert abs(macs(spec) / 1e9 - 4.09) < 0.01


@pytest.mark.parametrize("name", TORCHVISION_PRESETS)
def test_parameter_count_equals_torchvision(name: str) -> None:
    with torch.device("meta"):  # shapes only, no initialisation cost
        model = getattr(torchvision.models, name)(weights=None)
    assert parameter_count(get_spec(name)) == sum(p.numel() for p in model.parameters())


def test_registry_refuses_duplicates() -> None:
    registry = SpecRegistry()
    registry.register(ResNetSpec("x", "basic", (1, 1, 1, 1)))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ResNetSpec("x", "bottleneck", (1, 1, 1, 1)))


def test_required_presets_exist() -> None:
    for name in TORCHVISION_PRESETS + ["resnet18_small", "resnet50_small"]:
        assert name in PRESETS
    small = get_spec("resnet18_small")
    assert small.stem == "small" and small.input_size == 32


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown architecture 'resnet19'.*resnet18"):
        get_spec("resnet19")


@pytest.mark.parametrize("bad", [dict(block="dense"), dict(stem="huge"), dict(groups=32),
                                 dict(bn_momentum=0.0), dict(bn_running_var="sometimes")])
def test_invalid_specs_are_refused(bad: dict) -> None:
    with pytest.raises(UserError):
        ResNetSpec("bad", **{"block": "basic", "depths": (2, 2, 2, 2), **bad})


def test_spec_json_round_trip() -> None:
    spec = get_spec("resnext50_32x4d").replace(in_channels=1, num_classes=7)
    assert ResNetSpec.from_json(spec.to_json()) == spec


def test_block_plan_puts_stride_and_shortcut_where_torchvision_does() -> None:
    plans = block_plan(get_spec("resnet50"))
    assert [(p.stage, p.index) for p in plans if p.downsample] == [(1, 0), (2, 0), (3, 0), (4, 0)]
    assert [p.stride for p in plans if p.index == 0] == [1, 2, 2, 2]
    basic = block_plan(get_spec("resnet18"))
    assert [(p.stage, p.index) for p in basic if p.downsample] == [(2, 0), (3, 0), (4, 0)]
