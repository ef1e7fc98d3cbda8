"""A user's own small ResNet in Flax linen, with this suite's module names (conv1, bn1, layer{s}_{i}
with conv1 .. bn2 and downsample_conv / downsample_bn, fc), explicit padding, torch's BN momentum
(0.9 in linen's convention). One block per stage at widths 8-16, the CIFAR stem, or with
`imagenet_stem` torchvision's (7x7 stride 2, max-pool). Its batch norm `Norm` is nn.BatchNorm, which
feeds the running variance the biased batch variance (check it with --bn-running-var biased); passed
as `norm`, `TorchNorm` feeds it the unbiased one as torch does.
`build()` takes no argument; `PADDING` is the 3x3 convs' padding."""
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

PADDING = ((1, 1), (1, 1))
Norm = partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


class TorchBatchNorm(nn.BatchNorm):
    """linen's BatchNorm (its fields and variable names), normalising with the biased batch variance
    and feeding the running variance the unbiased one, as torch's BatchNorm2d does."""

    @nn.compact
    def __call__(self, x: jnp.ndarray, use_running_average: bool | None = None, **_: Any) -> jnp.ndarray:
        c = x.shape[-1]
        scale = self.param("scale", self.scale_init, (c,), self.param_dtype)
        bias = self.param("bias", self.bias_init, (c,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), self.param_dtype))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), self.param_dtype))
        if nn.merge_param("use_running_average", self.use_running_average, use_running_average):
            mean, var = ra_mean.value, ra_var.value
        else:
            mean = x.mean(axis=(0, 1, 2))
            var = ((x - mean) ** 2).mean(axis=(0, 1, 2))
            n = x.size // c
            if not self.is_initializing():
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var * (n / (n - 1))
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


TorchNorm = partial(TorchBatchNorm, momentum=0.9, epsilon=1e-5)


class BasicBlock(nn.Module):
    width: int
    stride: int = 1
    norm: Callable = Norm

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        s = (self.stride, self.stride)
        y = nn.Conv(self.width, (3, 3), s, padding=PADDING, use_bias=False, name="conv1")(x)
        y = nn.relu(self.norm(use_running_average=not train, name="bn1")(y))
        y = nn.Conv(self.width, (3, 3), padding=PADDING, use_bias=False, name="conv2")(y)
        y = self.norm(use_running_average=not train, name="bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.width:
            x = nn.Conv(self.width, (1, 1), s, padding="VALID", use_bias=False, name="downsample_conv")(x)
            x = self.norm(use_running_average=not train, name="downsample_bn")(x)
        return nn.relu(y + x)


class ResNet(nn.Module):
    widths: tuple = (8, 8, 16, 16)
    num_classes: int = 10
    stem_width: int | None = None
    imagenet_stem: bool = False
    norm: Callable = Norm
    block: type = BasicBlock

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        stem = self.stem_width or self.widths[0]
        if self.imagenet_stem:
            x = nn.Conv(stem, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False, name="conv1")(x)
        else:
            x = nn.Conv(stem, (3, 3), padding=PADDING, use_bias=False, name="conv1")(x)
        x = nn.relu(self.norm(use_running_average=not train, name="bn1")(x))
        if self.imagenet_stem:
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for i, w in enumerate(self.widths):
            x = self.block(w, 1 if i == 0 else 2, self.norm, name=f"layer{i + 1}_0")(x, train)
        return nn.Dense(self.num_classes, name="fc")(x.mean(axis=(1, 2)))


def build() -> ResNet:
    return ResNet()
