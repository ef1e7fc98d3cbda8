"""torch_resnet with a planted bug from the catalogue: one batch norm (layer3's block, bn2) built
with epsilon 1e-3 instead of 1e-5, as a mistyped constant would."""
from torch import nn

from torch_resnet import ResNet


def build() -> ResNet:
    model = ResNet()
    model.layer3[0].bn2 = nn.BatchNorm2d(16, eps=1e-3)
    return model
