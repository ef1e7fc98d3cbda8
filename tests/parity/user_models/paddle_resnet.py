"""A user's own small ResNet in Paddle with paddle.vision's names (conv1, bn1, layerK.I, downsample,
fc), built on paddle.nn.BatchNorm2D (which feeds the running variance the biased batch variance:
check it with --bn-running-var biased). One block per stage at widths 8-16, the CIFAR stem.
`build()` takes no argument; `BN_MOMENTUM` is Paddle's (the weight of the old running value)."""
import paddle
from paddle import nn

BN_MOMENTUM = 0.9


def bn(c: int) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(c, momentum=BN_MOMENTUM, epsilon=1e-5)


class BasicBlock(nn.Layer):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(cin, cout, 3, stride, 1, bias_attr=False)
        self.bn1 = bn(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(cout, cout, 3, 1, 1, bias_attr=False)
        self.bn2 = bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2D(cin, cout, 1, stride, bias_attr=False), bn(cout))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Layer):
    def __init__(self, widths: tuple = (8, 8, 16, 16), num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(3, widths[0], 3, 1, 1, bias_attr=False)
        self.bn1 = bn(widths[0])
        self.relu = nn.ReLU()
        cin = widths[0]
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


def build() -> ResNet:
    return ResNet()
