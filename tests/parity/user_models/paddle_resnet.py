"""A user's own small ResNet in Paddle with paddle.vision's names (conv1, bn1, layerK.I, downsample,
fc). One block per stage at widths 8-16, the CIFAR stem; `imagenet_stem`, bottleneck blocks and
groups (ResNeXt) as options. Its batch norm is `paddle.nn.BatchNorm2D` (which feeds the running
variance the biased batch variance: check it with --bn-running-var biased), or, passed as `norm`,
`TorchBatchNorm2D`, which feeds it the unbiased one as torch does.
`build()` takes no argument; `BN_MOMENTUM` is Paddle's (the weight of the old running value)."""
import numpy as np
import paddle
from paddle import nn

BN_MOMENTUM = 0.9


def bn(c: int) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(c, momentum=BN_MOMENTUM, epsilon=1e-5)


class TorchBatchNorm2D(nn.BatchNorm2D):
    """Paddle's BatchNorm2D feeding the running variance torch's way: Paddle's CPU kernel mixes in the
    biased batch variance, this layer rescales that part by n / (n - 1) after each training forward."""

    def __init__(self, c: int) -> None:
        super().__init__(c, momentum=BN_MOMENTUM, epsilon=1e-5)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training:
            return super().forward(x)
        old = self._variance.clone()
        y = super().forward(x)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        m = float(np.float32(self._momentum))  # the kernel's float32 attribute, not the Python float
        with paddle.no_grad():
            self._variance.set_value(m * old + (self._variance - m * old) * (n / (n - 1)))
        return y


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, norm=bn, groups: int = 1,
                 width_per_group: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(cin, width, 3, stride, 1, bias_attr=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(width, width, 3, 1, 1, bias_attr=False)
        self.bn2 = norm(width)
        self.downsample = _downsample(cin, width, stride, norm)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class BottleneckBlock(nn.Layer):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, norm=bn, groups: int = 1,
                 width_per_group: int = 64) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        self.conv1 = nn.Conv2D(cin, width, 1, bias_attr=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2D(width, width, 3, stride, 1, groups=groups, bias_attr=False)  # v1.5: stride here
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2D(width, planes * 4, 1, bias_attr=False)
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = _downsample(cin, planes * 4, stride, norm)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(cin: int, cout: int, stride: int, norm) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2D(cin, cout, 1, stride, bias_attr=False), norm(cout))


class ResNet(nn.Layer):
    def __init__(self, widths: tuple = (8, 8, 16, 16), num_classes: int = 10, stem_width: int | None = None,
                 imagenet_stem: bool = False, block: type = BasicBlock, norm=bn, groups: int = 1,
                 width_per_group: int = 64) -> None:
        super().__init__()
        cin = stem_width or widths[0]
        self.conv1 = nn.Conv2D(3, cin, 7 if imagenet_stem else 3, 2 if imagenet_stem else 1,
                               3 if imagenet_stem else 1, bias_attr=False)
        self.bn1 = norm(cin)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(3, 2, 1) if imagenet_stem else nn.Identity()
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", nn.Sequential(
                block(cin, w, 1 if i == 0 else 2, norm, groups, width_per_group)))
            cin = w * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


def build() -> ResNet:
    return ResNet()
