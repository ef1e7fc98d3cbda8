"""One ResNet spec, as data, and the registry of named presets.

Every framework and the float64 oracle build the same network from a `ResNetSpec`; the block
plan (`block_plan`) is the one place where channel counts, strides and shortcuts are derived.

Batch-norm momentum convention: `bn_momentum` is the weight of the *new batch statistic* in the
running-average update, as in PyTorch (0.1): running = (1 - m) * running + m * batch.
Paddle and Flax pass `1 - bn_momentum` (0.9) to their own BatchNorm.
`bn_running_var` says which batch variance feeds the running variance: "unbiased" (n/(n-1),
PyTorch's native rule) or "biased" (Paddle's and Flax's native rule); "native" lets each
framework do what it does by default.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Iterator, Literal

from .errors import UserError

BlockType = Literal["basic", "bottleneck"]
StemType = Literal["imagenet", "small"]
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
    stem_width: int = 64
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    bn_running_var: RunningVar = "unbiased"
    zero_init_residual: bool = False
    input_size: int = 224

    def __post_init__(self) -> None:
        if self.block not in EXPANSION:
            raise UserError(f"spec {self.name}: block must be basic or bottleneck, found {self.block!r}")
        if self.stem not in ("imagenet", "small"):
            raise UserError(f"spec {self.name}: stem must be imagenet or small, found {self.stem!r}")
        if self.bn_running_var not in ("unbiased", "biased", "native"):
            raise UserError(f"spec {self.name}: bn_running_var must be unbiased, biased or native, "
                            f"found {self.bn_running_var!r}")
        if len(self.depths) != len(self.widths) or not self.depths:
            raise UserError(f"spec {self.name}: depths {self.depths} and widths {self.widths} differ in length")
        if self.block == "basic" and (self.groups != 1 or self.width_per_group != 64):
            raise UserError(f"spec {self.name}: BasicBlock supports only groups=1 and width_per_group=64")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise UserError(f"spec {self.name}: bn_momentum must be in (0, 1], found {self.bn_momentum}")

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
    def from_json(cls, text: str) -> "ResNetSpec":
        try:
            fields = json.loads(text)
            fields["depths"] = tuple(fields["depths"])
            fields["widths"] = tuple(fields["widths"])
            return cls(**fields)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"spec JSON is not a valid ResNetSpec: {exc}") from None

    def replace(self, **changes: object) -> "ResNetSpec":
        return dataclasses.replace(self, **changes)


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
            plans.append(BlockPlan(stage, index, in_ch, mid, out_ch, stride,
                                   downsample=stride != 1 or in_ch != out_ch))
            in_ch = out_ch
    return plans


def stages(spec: ResNetSpec) -> Iterator[tuple[int, list[BlockPlan]]]:
    """Blocks grouped by stage number."""
    plans = block_plan(spec)
    for stage in range(1, len(spec.depths) + 1):
        yield stage, [p for p in plans if p.stage == stage]


def stem_geometry(spec: ResNetSpec) -> tuple[int, int, int]:
    """(kernel, stride, padding) of the stem convolution."""
    return (7, 2, 3) if spec.stem == "imagenet" else (3, 1, 1)


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
PRESETS.register(ResNetSpec("resnext50_32x4d", "bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4))
PRESETS.register(ResNetSpec("wide_resnet50_2", "bottleneck", (3, 4, 6, 3), width_per_group=128))
# Small-input variants: 3x3/1 stem, no max-pool, for 28-32 px images (MNIST, CIFAR).
PRESETS.register(ResNetSpec("resnet18_small", "basic", (2, 2, 2, 2), stem="small", num_classes=10, input_size=32))
PRESETS.register(ResNetSpec("resnet50_small", "bottleneck", (3, 4, 6, 3), stem="small", num_classes=10,
                            input_size=32))


def get_spec(name: str) -> ResNetSpec:
    return PRESETS.get(name)
