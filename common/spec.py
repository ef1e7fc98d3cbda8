"""One ResNet spec, as data, and the registry of named presets.

Every framework and the float64 oracle build the same network from a `ResNetSpec`; the block
plan (`block_plan`) is the one place where channel counts, strides and shortcuts are derived.

Batch-norm momentum convention: `bn_momentum` is the weight of the *new batch statistic* in the
running-average update, as in PyTorch (0.1): running = (1 - m) * running + m * batch.
Paddle and Flax pass `1 - bn_momentum` (0.9) to their own BatchNorm.
`stem` "deep" and `downsample` "avg" are ResNet-D (timm's resnet*d, PaddleClas' ResNet*_vd): see
docs/variants.md; `stem_convs` and `BlockPlan.pool` are where their shapes are derived.
`bn_running_var` says which batch variance feeds the running variance: "unbiased" (n/(n-1),
PyTorch's native rule) or "biased" (Paddle's and Flax's native rule); "native" lets each
framework do what it does by default.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Iterator, Literal

from .errors import UserError

BlockType = Literal["basic", "bottleneck"]
StemType = Literal["imagenet", "small", "deep"]
DownsampleType = Literal["conv", "avg"]
RunningVar = Literal["unbiased", "biased", "native"]

EXPANSION = {"basic": 1, "bottleneck": 4}
STAGE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4", "pooled", "logits")


@dataclass(frozen=True)
class ResNetSpec:
    """Architecture and numerics of one ResNet; frozen so it can key caches and registries."""

    name: str
    block: BlockType
    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    width_per_group: int = 64
    num_classes: int = 1000
    in_channels: int = 3
    stem: StemType = "imagenet"
    stem_width: int = 64  # channels leaving the stem (a deep stem's last conv)
    downsample: DownsampleType = "conv"  # "avg": 2x2 average pool, then a stride-1 1x1 conv (ResNet-D)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    bn_running_var: RunningVar = "unbiased"
    zero_init_residual: bool = False
    input_size: int = 224

    def __post_init__(self) -> None:
        validate_spec(self)

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    @property
    def feature_dim(self) -> int:
        """Channels entering the classifier."""
        return self.widths[-1] * self.expansion

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> "ResNetSpec":
        """The spec in `text`, every field validated; errors name `source` (a file) when given."""
        where = f"{source}: " if source else ""
        try:
            fields = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where}spec is not valid JSON ({exc})") from None
        if not isinstance(fields, dict):
            raise UserError(f"{where}spec: expected a JSON object, found {type(fields).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise UserError(f"{where}spec: unknown fields {', '.join(map(str, unknown))}")
        missing = [k for k in ("name", "block", "depths") if k not in fields]
        if missing:
            raise UserError(f"{where}spec: missing fields {', '.join(missing)}")
        for key in ("depths", "widths"):
            if key in fields:
                if not isinstance(fields[key], list):
                    raise UserError(f"{where}spec field {key}: expected a list of integers, "
                                    f"found {fields[key]!r}")
                fields[key] = tuple(fields[key])
        try:
            return cls(**fields)
        except UserError as exc:
            raise UserError(f"{where}{exc}") from None

    def replace(self, **changes: object) -> "ResNetSpec":
        return dataclasses.replace(self, **changes)


_INT_RANGES = {"groups": 4096, "width_per_group": 1 << 16, "num_classes": 10**7, "in_channels": 4096,
               "stem_width": 1 << 16, "input_size": 1 << 16}  # upper bounds: sanity caps, not limits of ResNet


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_spec(spec: ResNetSpec) -> None:
    """Every field of `spec` of the right type and in range; a UserError naming the field otherwise.

    The one check of a spec, wherever it comes from (a preset, a file header, a training config)."""
    def bad(field: str, expected: str) -> UserError:
        return UserError(f"spec {spec.name}: field {field}: expected {expected}, found {getattr(spec, field)!r}")

    if not isinstance(spec.name, str) or not spec.name:
        raise UserError(f"spec: field name: expected a non-empty string, found {spec.name!r}")
    choices = {"block": tuple(EXPANSION), "stem": ("imagenet", "small", "deep"), "downsample": ("conv", "avg"),
               "bn_running_var": ("unbiased", "biased", "native")}
    for field, allowed in choices.items():
        if getattr(spec, field) not in allowed:
            raise bad(field, " or ".join(allowed))
    for field, cap in (("depths", 1000), ("widths", 1 << 16)):
        value = getattr(spec, field)
        if not isinstance(value, tuple) or not value or not all(_is_int(v) and 1 <= v <= cap for v in value):
            raise bad(field, f"a non-empty list of integers in [1, {cap}]")
    if len(spec.depths) != len(spec.widths):
        raise UserError(f"spec {spec.name}: depths {spec.depths} and widths {spec.widths} differ in length")
    for field, cap in _INT_RANGES.items():
        value = getattr(spec, field)
        if not _is_int(value) or not 1 <= value <= cap:
            raise bad(field, f"an integer in [1, {cap}]")
    for field, low, high, closed in (("bn_eps", 0.0, 1.0, False), ("bn_momentum", 0.0, 1.0, True)):
        value = getattr(spec, field)
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or not low < value <= high or (value == high and not closed)):
            raise bad(field, f"a finite number in ({low:g}, {high:g}{']' if closed else ')'}")
    if spec.stem == "deep" and spec.stem_width % 2:
        raise bad("stem_width", "an even number for a deep stem (its first two convs have stem_width / 2)")
    if not isinstance(spec.zero_init_residual, bool):
        raise bad("zero_init_residual", "true or false")
    if spec.block == "basic" and (spec.groups != 1 or spec.width_per_group != 64):
        raise UserError(f"spec {spec.name}: BasicBlock supports only groups=1 and width_per_group=64")
    if spec.block == "bottleneck" and any(int(w * spec.width_per_group / 64.0) < 1 for w in spec.widths):
        raise bad("width_per_group", "widths * width_per_group / 64 >= 1 in every stage")


@dataclass(frozen=True)
class BlockPlan:
    """One residual block: where it sits and what it computes (torchvision v1.5: stride on the 3x3)."""

    stage: int  # 1-based, as in torchvision's layer1..layer4
    index: int  # position inside the stage
    in_channels: int
    mid_channels: int  # width of the 3x3 conv(s)
    out_channels: int
    stride: int
    downsample: bool  # 1x1 conv + BN shortcut instead of identity
    pool: bool = False  # the shortcut averages 2x2 windows (stride 2, ceil mode) before a stride-1 1x1 conv

    @property
    def shortcut_stride(self) -> int:
        """Stride of the shortcut's 1x1 conv: 1 when the average pool has already downsampled."""
        return 1 if self.pool else self.stride

    @property
    def prefix(self) -> str:
        """Canonical (torchvision) module path of this block."""
        return f"layer{self.stage}.{self.index}"


def block_plan(spec: ResNetSpec) -> list[BlockPlan]:
    """All residual blocks of `spec` in execution order."""
    plans: list[BlockPlan] = []
    in_ch = spec.stem_width
    for stage, (depth, width) in enumerate(zip(spec.depths, spec.widths), start=1):
        out_ch = width * spec.expansion
        if spec.block == "bottleneck":
            mid = int(width * (spec.width_per_group / 64.0)) * spec.groups
        else:
            mid = width
        for index in range(depth):
            stride = 2 if (index == 0 and stage > 1) else 1
            downsample = stride != 1 or in_ch != out_ch
            plans.append(BlockPlan(stage, index, in_ch, mid, out_ch, stride, downsample,
                                   pool=downsample and stride != 1 and spec.downsample == "avg"))
            in_ch = out_ch
    return plans


def stages(spec: ResNetSpec) -> Iterator[tuple[int, list[BlockPlan]]]:
    """Blocks grouped by stage number."""
    plans = block_plan(spec)
    for stage in range(1, len(spec.depths) + 1):
        yield stage, [p for p in plans if p.stage == stage]


@dataclass(frozen=True)
class StemConv:
    """One convolution of the stem, its batch norm (a ReLU follows each) and their canonical names."""

    conv: str
    bn: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int

    @property
    def padding(self) -> int:
        return self.kernel // 2


def stem_convs(spec: ResNetSpec) -> list[StemConv]:
    """The stem's conv + BN + ReLU triples in order; a max-pool follows unless the stem is "small".

    "imagenet": one 7x7/2; "small": one 3x3/1; "deep" (ResNet-C/D): three 3x3 convs, widths
    stem_width/2, stem_width/2, stem_width, the first of stride 2, named as timm names them
    (`conv1.0`, `conv1.1` its BN, `conv1.3`, `conv1.4`, `conv1.6`, then `bn1`)."""
    if spec.stem != "deep":
        k, s = (7, 2) if spec.stem == "imagenet" else (3, 1)
        return [StemConv("conv1", "bn1", spec.in_channels, spec.stem_width, k, s)]
    half = spec.stem_width // 2
    return [StemConv("conv1.0", "conv1.1", spec.in_channels, half, 3, 2),
            StemConv("conv1.3", "conv1.4", half, half, 3, 1),
            StemConv("conv1.6", "bn1", half, spec.stem_width, 3, 1)]


def has_max_pool(spec: ResNetSpec) -> bool:
    """The 3x3/2 max-pool that ends the stem (every stem but "small")."""
    return spec.stem != "small"


def downsample_names(spec: ResNetSpec) -> tuple[str, str]:
    """Canonical names of the shortcut's conv and BN inside a block: torchvision's `downsample.0/.1`,
    or timm's `downsample.1/.2` when `downsample.0` is the average pool (an Identity at stride 1)."""
    return ("downsample.1", "downsample.2") if spec.downsample == "avg" else ("downsample.0", "downsample.1")


# ---------------------------------------------------------------- registry

class SpecRegistry:
    """Named presets; refuses duplicates so a name always means one architecture."""

    def __init__(self) -> None:
        self._specs: dict[str, ResNetSpec] = {}

    def register(self, spec: ResNetSpec) -> ResNetSpec:
        if spec.name in self._specs:
            raise ValueError(f"preset {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> ResNetSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UserError(f"unknown architecture {name!r}; known: {', '.join(self._specs)}") from None

    def names(self) -> list[str]:
        return list(self._specs)

    def __iter__(self) -> Iterator[ResNetSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs


PRESETS = SpecRegistry()
for _name, _block, _depths in [
    ("resnet18", "basic", (2, 2, 2, 2)),
    ("resnet34", "basic", (3, 4, 6, 3)),
    ("resnet50", "bottleneck", (3, 4, 6, 3)),
    ("resnet101", "bottleneck", (3, 4, 23, 3)),
    ("resnet152", "bottleneck", (3, 8, 36, 3)),
]:
    PRESETS.register(ResNetSpec(_name, _block, _depths))
# ResNet-D (timm's resnet*d, PaddleClas' ResNet*_vd): deep 32-32-64 stem, average-pool downsample.
for _name, _block, _depths in [
    ("resnet18d", "basic", (2, 2, 2, 2)),
    ("resnet34d", "basic", (3, 4, 6, 3)),
    ("resnet50d", "bottleneck", (3, 4, 6, 3)),
    ("resnet101d", "bottleneck", (3, 4, 23, 3)),
    ("resnet152d", "bottleneck", (3, 8, 36, 3)),
]:
    PRESETS.register(ResNetSpec(_name, _block, _depths, stem="deep", downsample="avg"))
PRESETS.register(ResNetSpec("resnext50_32x4d", "bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4))
PRESETS.register(ResNetSpec("wide_resnet50_2", "bottleneck", (3, 4, 6, 3), width_per_group=128))
# Small-input variants: 3x3/1 stem, no max-pool, for 28-32 px images (MNIST, CIFAR).
PRESETS.register(ResNetSpec("resnet18_small", "basic", (2, 2, 2, 2), stem="small", num_classes=10, input_size=32))
PRESETS.register(ResNetSpec("resnet50_small", "bottleneck", (3, 4, 6, 3), stem="small", num_classes=10,
                            input_size=32))


def get_spec(name: str) -> ResNetSpec:
    return PRESETS.get(name)
