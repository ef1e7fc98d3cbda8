"""ResNet in PyTorch (`torch.nn`, NCHW), built from a ResNetSpec; state_dict identical to torchvision's,
and to timm's for ResNet-D (deep stem `conv1` a Sequential, average-pool `downsample.0`)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from resnet_rosetta.common.spec import BlockPlan, ResNetSpec, has_max_pool, stages, stem_convs


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose running variance can be fed the biased batch variance.

    torch natively feeds running_var with the unbiased variance n/(n-1); with
    `spec.bn_running_var == "biased"` this layer rescales the update so it matches Paddle and Flax.
    Scale 1 and shift 0 at start, as nn.BatchNorm2d; scale 0 on the BN that ends a residual
    branch when `spec.zero_init_residual`.
    """

    def __init__(self, num_features: int, spec: ResNetSpec, ends_residual_branch: bool = False) -> None:
        super().__init__(num_features, eps=spec.bn_eps, momentum=spec.bn_momentum)
        self.biased_running_var = spec.bn_running_var == "biased"
        if ends_residual_branch and spec.zero_init_residual:  # the residual branch starts as zero
            nn.init.zeros_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.biased_running_var):
            return super().forward(x)
        n = x.numel() // x.shape[1]
        old_var = self.running_var.clone()
        y = super().forward(x)
        with torch.no_grad():  # undo the n/(n-1) factor on the new-batch term only
            m = self.momentum
            new_term = self.running_var - (1 - m) * old_var
            self.running_var.data.copy_((1 - m) * old_var + new_term * (n - 1) / n)  # .data: autograd saved it
        return y


class BasicBlock(nn.Module):
    def __init__(self, plan: BlockPlan, spec: ResNetSpec) -> None:
        super().__init__()
        self.conv1 = conv3x3(plan.in_channels, plan.mid_channels, plan.stride)
        self.bn1 = BatchNorm2d(plan.mid_channels, spec)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(plan.mid_channels, plan.out_channels)
        self.bn2 = BatchNorm2d(plan.out_channels, spec, ends_residual_branch=True)
        self.downsample = _downsample(plan, spec)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity  # in place, as torchvision: no new activation-sized tensor per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    def __init__(self, plan: BlockPlan, spec: ResNetSpec) -> None:
        super().__init__()
        self.conv1 = conv1x1(plan.in_channels, plan.mid_channels)
        self.bn1 = BatchNorm2d(plan.mid_channels, spec)
        self.conv2 = conv3x3(plan.mid_channels, plan.mid_channels, plan.stride, spec.groups)
        self.bn2 = BatchNorm2d(plan.mid_channels, spec)
        self.conv3 = conv1x1(plan.mid_channels, plan.out_channels)
        self.bn3 = BatchNorm2d(plan.out_channels, spec, ends_residual_branch=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(plan, spec)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as torchvision: no new activation-sized tensor per block
        return self.relu(out)


def _downsample(plan: BlockPlan, spec: ResNetSpec) -> nn.Sequential | None:
    """torchvision's conv1x1 + BN; for ResNet-D timm's AvgPool2d (Identity at stride 1) + conv1x1 + BN."""
    if not plan.downsample:
        return None
    conv_bn = [conv1x1(plan.in_channels, plan.out_channels, plan.shortcut_stride), BatchNorm2d(plan.out_channels, spec)]
    if spec.downsample == "conv":
        return nn.Sequential(*conv_bn)
    pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if plan.pool else nn.Identity()
    return nn.Sequential(pool, *conv_bn)


def _stem(spec: ResNetSpec) -> tuple[nn.Module, BatchNorm2d]:
    """The stem's convs up to its last BN (`conv1`, `bn1`): one conv, or timm's deep Sequential
    conv, BN, ReLU, conv, BN, ReLU, conv."""
    convs = stem_convs(spec)
    layers: list[nn.Module] = []
    for c in convs:
        layers += [nn.Conv2d(c.in_channels, c.out_channels, c.kernel, stride=c.stride, padding=c.padding, bias=False),
                   BatchNorm2d(c.out_channels, spec), nn.ReLU(inplace=True)]
    *inner, conv_last, bn_last, _ = layers
    return (conv_last if len(convs) == 1 else nn.Sequential(*inner, conv_last)), bn_last


class ResNet(nn.Module):
    """`forward` returns logits; `forward_stages` returns every named stage output."""

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        self.spec = spec
        block = BasicBlock if spec.block == "basic" else Bottleneck
        self.conv1, self.bn1 = _stem(spec)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if has_max_pool(spec) else nn.Identity()
        for stage, plans in stages(spec):
            self.add_module(f"layer{stage}", nn.Sequential(*[block(plan, spec) for plan in plans]))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(spec.feature_dim, spec.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's conv initialisation: Kaiming normal, fan_out (BatchNorm2d initialises itself)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_stages(self, x: Tensor) -> dict[str, Tensor]:
        out = {"stem": self.maxpool(self.relu(self.bn1(self.conv1(x))))}
        x = out["stem"]
        for stage in range(1, len(self.spec.depths) + 1):
            x = getattr(self, f"layer{stage}")(x)
            out[f"layer{stage}"] = x
        out["pooled"] = torch.flatten(self.avgpool(x), 1)
        out["logits"] = self.fc(out["pooled"])
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_stages(x)["logits"]
