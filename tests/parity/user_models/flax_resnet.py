"""A user's own small ResNet in Flax linen, with this suite's module names (conv1, bn1, layer{s}_{i}
with conv1 .. bn2 and downsample_conv / downsample_bn, fc), explicit padding, torch's BN momentum
(0.9 in linen's convention). nn.BatchNorm feeds the running variance the biased batch variance:
check it with --bn-running-var biased. One block per stage at widths 8-16, the CIFAR stem.
`build()` takes no argument; `PADDING` is the 3x3 convs' padding."""
from functools import partial

import jax.numpy as jnp
from flax import linen as nn

PADDING = ((1, 1), (1, 1))
Norm = partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


class BasicBlock(nn.Module):
    width: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        s = (self.stride, self.stride)
        y = nn.Conv(self.width, (3, 3), s, padding=PADDING, use_bias=False, name="conv1")(x)
        y = nn.relu(Norm(use_running_average=not train, name="bn1")(y))
        y = nn.Conv(self.width, (3, 3), padding=PADDING, use_bias=False, name="conv2")(y)
        y = Norm(use_running_average=not train, name="bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.width:
            x = nn.Conv(self.width, (1, 1), s, padding="VALID", use_bias=False, name="downsample_conv")(x)
            x = Norm(use_running_average=not train, name="downsample_bn")(x)
        return nn.relu(y + x)


class ResNet(nn.Module):
    widths: tuple = (8, 8, 16, 16)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = nn.Conv(self.widths[0], (3, 3), padding=PADDING, use_bias=False, name="conv1")(x)
        x = nn.relu(Norm(use_running_average=not train, name="bn1")(x))
        for i, w in enumerate(self.widths):
            x = BasicBlock(w, 1 if i == 0 else 2, name=f"layer{i + 1}_0")(x, train)
        return nn.Dense(self.num_classes, name="fc")(x.mean(axis=(1, 2)))


def build() -> ResNet:
    return ResNet()
