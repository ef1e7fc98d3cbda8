"""ResNet in Flax linen (NHWC), built from a ResNetSpec.

Idioms worth noticing: conv and norm are passed in as `functools.partial`s (as in the Flax
ImageNet example), every submodule is named explicitly so parameter paths mirror torchvision
(`params/layer1_0/conv1/kernel`), padding is always explicit `((p, p), (p, p))` because 'SAME'
pads (0, 1) for stride 2 on even sizes, and batch-norm state lives in the `batch_stats` collection.
linen's `avg_pool` has no ceil mode: ResNet-D's shortcut pads an odd side by one at the end and
leaves the padding out of the average (`count_include_pad=False`), which is the same thing.

A Flax NNX variant can sit beside this file as its own module: the converter rules key on the
parameter paths, not on the module system.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax.numpy as jnp
from flax import linen as nn

from resnet_rosetta.common.spec import BlockPlan, ResNetSpec, has_max_pool, stages, stem_convs

ModuleDef = Callable[..., nn.Module]
# torchvision's conv initialisation: Kaiming normal, fan_out, gain sqrt(2).
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BatchNorm(nn.Module):
    """Batch norm with the spec's conventions, state in `batch_stats/{mean,var}`.

    linen's own `nn.BatchNorm` takes `momentum` as the weight of the *old* value (default 0.99,
    torch's 0.1 is 0.9 here) and always feeds the running variance with the biased batch
    variance; this module does the same and can also feed the unbiased one (torch's rule).
    """

    spec: ResNetSpec
    use_running_average: bool
    ends_residual_branch: bool = False  # starts at zero when spec.zero_init_residual

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        zero_init = self.ends_residual_branch and self.spec.zero_init_residual
        scale_init = nn.initializers.zeros if zero_init else nn.initializers.ones
        scale = self.param("scale", scale_init, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            # Both moments in one pass over x, reduced in float32 (float64 in an fp64 model), as linen's
            # BatchNorm does by default (use_fast_variance): Var = E[x^2] - E[x]^2, clipped at 0. The
            # two-pass E[(x - E[x])^2] reads x once more forward and backward (docs/benchmarks.md).
            xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
            mean = xf.mean(axis=(0, 1, 2))
            var = jnp.maximum(0.0, jnp.square(xf).mean(axis=(0, 1, 2)) - jnp.square(mean))
            if not self.is_initializing():
                n = x.size // c
                feed = var * n / (n - 1) if self.spec.bn_running_var == "unbiased" else var
                m = 1.0 - self.spec.bn_momentum  # Flax convention: weight of the old value
                ra_mean.value = m * ra_mean.value + (1 - m) * mean
                ra_var.value = m * ra_var.value + (1 - m) * feed
            mean, var = mean.astype(x.dtype), var.astype(x.dtype)  # normalise in the compute dtype
        mul = scale * jnp.reciprocal(jnp.sqrt(var + self.spec.bn_eps))
        return (x - mean) * mul + bias


class BasicBlock(nn.Module):
    plan: BlockPlan
    conv: ModuleDef
    norm: ModuleDef

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        p, s = self.plan, self.plan.stride
        y = self.conv(p.mid_channels, (3, 3), (s, s), padding=((1, 1), (1, 1)), name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(p.out_channels, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
        y = self.norm(name="bn2", ends_residual_branch=True)(y)
        return nn.relu(y + _shortcut(self, x))


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    plan: BlockPlan
    conv: ModuleDef
    norm: ModuleDef
    groups: int = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        p, s = self.plan, self.plan.stride
        y = self.conv(p.mid_channels, (1, 1), padding=((0, 0), (0, 0)), name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(p.mid_channels, (3, 3), (s, s), padding=((1, 1), (1, 1)),
                      feature_group_count=self.groups, name="conv2")(y)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self.conv(p.out_channels, (1, 1), padding=((0, 0), (0, 0)), name="conv3")(y)
        y = self.norm(name="bn3", ends_residual_branch=True)(y)
        return nn.relu(y + _shortcut(self, x))


def _shortcut(block: BasicBlock | Bottleneck, x: jnp.ndarray) -> jnp.ndarray:
    p = block.plan
    if not p.downsample:
        return x
    if p.pool:  # 2x2/2 average pool in ceil mode, padding excluded (ResNet-D)
        x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding=((0, x.shape[1] % 2), (0, x.shape[2] % 2)),
                        count_include_pad=False)
    s = p.shortcut_stride
    x = block.conv(p.out_channels, (1, 1), (s, s), padding=((0, 0), (0, 0)), name="downsample_conv")(x)
    return block.norm(name="downsample_bn")(x)


class ResNet(nn.Module):
    """`__call__(x_nhwc, train)` returns `(logits, stages)`, stages a dict of named NHWC outputs."""

    spec: ResNetSpec

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        spec = self.spec
        conv = partial(nn.Conv, use_bias=False, kernel_init=conv_init)
        norm = partial(BatchNorm, spec=spec, use_running_average=not train)
        for c in stem_convs(spec):  # names mirror the canonical ones: conv1, bn1 (deep: conv1_0, conv1_1, ...)
            k, s, p = c.kernel, c.stride, c.padding
            x = conv(c.out_channels, (k, k), (s, s), padding=((p, p), (p, p)), name=c.conv.replace(".", "_"))(x)
            x = nn.relu(norm(name=c.bn.replace(".", "_"))(x))
        if has_max_pool(spec):
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        block = BasicBlock if spec.block == "basic" else partial(Bottleneck, groups=spec.groups)
        out = {"stem": x}
        for stage, plans in stages(spec):
            for plan in plans:
                x = block(plan, conv, norm, name=f"layer{stage}_{plan.index}")(x)
            out[f"layer{stage}"] = x
        out["pooled"] = x.mean(axis=(1, 2))
        out["logits"] = nn.Dense(spec.num_classes, name="fc")(out["pooled"])
        return out["logits"], out
