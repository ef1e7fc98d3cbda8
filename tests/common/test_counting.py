"""common/counting.py: parameter and multiply-accumulate counts of two tiny specs added up by hand, and
of the presets against torchvision's published figures (fast: arithmetic only, no framework)."""
from __future__ import annotations

import pytest

from resnet_rosetta.common.counting import macs, parameter_count
from resnet_rosetta.common.spec import ResNetSpec, get_spec

BASIC = ResNetSpec("t_basic", "basic", (1, 2), widths=(2, 4), stem_width=2, num_classes=3, in_channels=1,
                   input_size=32)
BNECK = ResNetSpec("t_bneck", "bottleneck", (1, 1), widths=(2, 2), groups=2, stem="small", stem_width=4,
                   num_classes=5, in_channels=2, input_size=8)  # mid 4, out 8: both blocks have a shortcut conv


def test_basic_counts_by_hand() -> None:
    # conv1 2*1*49; bn1 2*2; layer1.0 2 * (2*2*9 + 2*2); layer2.0 4*2*9 + 8 + 4*4*9 + 8 + 4*2 + 8;
    # layer2.1 2 * (4*4*9 + 8); fc 3*4 + 3
    assert parameter_count(BASIC) == 98 + 4 + 80 + 248 + 304 + 15
    # 32 px: stem conv 16x16 out, max-pool to 8x8, layer2 at 4x4 (stride on the first 3x3 and the shortcut)
    stem = 16 * 16 * 2 * 1 * 49
    layer1 = 2 * 8 * 8 * 2 * 2 * 9
    layer2_0 = 4 * 4 * 4 * 2 * 9 + 4 * 4 * 4 * 4 * 9 + 4 * 4 * 4 * 2
    layer2_1 = 2 * 4 * 4 * 4 * 4 * 9
    assert macs(BASIC) == stem + layer1 + layer2_0 + layer2_1 + 4 * 3
    assert macs(BASIC, 64) == 4 * (stem + layer1 + layer2_0 + layer2_1) + 12
    assert macs(BASIC.replace(num_classes=256)) == macs(BASIC) + 4 * (256 - 3)  # the classifier term is added
    assert macs(BASIC, 31) == macs(BASIC, 32)
    assert macs(BASIC, 30) == macs(BASIC) - (16 * 16 - 15 * 15) * 98  # stem 15x15, max-pool back to 8x8
    assert macs(ResNetSpec.from_json(BASIC.to_json())) == macs(BASIC)  # "basic" read from JSON, not interned  # 31 px: (31 + 6 - 7) // 2 + 1 = 16 as well


def test_bottleneck_counts_by_hand() -> None:
    # conv1 4*2*9; bn1 8; layer1.0: 4*4 + 8, 4*2*9 + 8, 8*4 + 16, shortcut 8*4 + 16;
    # layer2.0: 4*8 + 8, 4*2*9 + 8, 8*4 + 16, shortcut 8*8 + 16; fc 5*8 + 5
    assert parameter_count(BNECK) == 72 + 8 + 200 + 248 + 45
    stem = 8 * 8 * 4 * 2 * 9  # 3x3 stride 1, no max-pool
    layer1 = 64 * 4 * 4 + 64 * 4 * 2 * 9 + 64 * 8 * 4 + 64 * 8 * 4
    layer2 = 64 * 4 * 8 + 16 * 4 * 2 * 9 + 16 * 8 * 4 + 16 * 8 * 8  # the 1x1 conv1 runs before the stride
    assert macs(BNECK) == stem + layer1 + layer2 + 8 * 5


@pytest.mark.parametrize("name, params, gmacs", [
    ("resnet18", 11_689_512, 1.81), ("resnet34", 21_797_672, 3.66), ("resnet50", 25_557_032, 4.09),
    ("resnet101", 44_549_160, 7.80), ("resnet152", 60_192_808, 11.51), ("resnext50_32x4d", 25_028_904, 4.23),
    ("wide_resnet50_2", 68_883_240, 11.40)])
def test_presets_match_torchvision_published_figures(name: str, params: int, gmacs: float) -> None:
    """The parameter counts and GFLOPS (multiply-accumulates) of torchvision's model documentation."""
    spec = get_spec(name)
    assert parameter_count(spec) == params
    assert abs(macs(spec) / 1e9 - gmacs) < 0.005
