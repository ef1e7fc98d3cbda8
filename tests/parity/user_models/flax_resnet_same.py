"""flax_resnet with a planted bug from the catalogue: 'SAME' padding on the 3x3 convs (at stride 2
on even sizes it pads (0, 1), not (1, 1))."""
import flax_resnet


def build() -> flax_resnet.ResNet:
    flax_resnet.PADDING = "SAME"  # read when the module is applied, so it stays for this process
    return flax_resnet.ResNet()
