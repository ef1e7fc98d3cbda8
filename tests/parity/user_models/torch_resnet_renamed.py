"""torch_resnet with its classifier named `head` (not `fc`) and one stage narrower than its
shortcut expects: names no layout in the rule table has, so `--model` refuses it in one line."""
import torch

from torch_resnet import ResNet


class Renamed(ResNet):
    def __init__(self) -> None:
        super().__init__()
        self.head = self.fc
        del self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build() -> Renamed:
    return Renamed()
