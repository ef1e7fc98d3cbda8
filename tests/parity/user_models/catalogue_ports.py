"""The user-style ports the broken-port catalogue writes its bugs into (tests/parity/test_catalogue.py
checks them through `parity --model`'s machinery): this folder's models at the catalogue's two
structures, each following torch's conventions (Paddle's and Flax's batch norms feed the running
variance the unbiased batch variance, as `TorchBatchNorm2D` / `TorchNorm` do)."""
import flax_resnet
import paddle_resnet
import torch_resnet

RESNET18 = dict(widths=(4, 8, 8, 16), num_classes=16, stem_width=4, imagenet_stem=True)


def torch_resnet18() -> torch_resnet.ResNet:
    return torch_resnet.ResNet(**RESNET18)


def paddle_resnet18() -> paddle_resnet.ResNet:
    return paddle_resnet.ResNet(**RESNET18, norm=paddle_resnet.TorchBatchNorm2D)


def paddle_resnext() -> paddle_resnet.ResNet:
    return paddle_resnet.ResNet((4, 8, 8, 16), num_classes=10, stem_width=8, imagenet_stem=True,
                                block=paddle_resnet.BottleneckBlock, norm=paddle_resnet.TorchBatchNorm2D,
                                groups=2, width_per_group=32)


def flax_resnet18() -> flax_resnet.ResNet:
    return flax_resnet.ResNet(**RESNET18, norm=flax_resnet.TorchNorm)
