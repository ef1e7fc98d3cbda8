"""ResNet in Paddle dygraph (`paddle.nn`; NCHW, or NHWC with `data_format`), following the classic
Paddle ResNet source.

ConvBNLayer (`_conv` + `_batch_norm`), BasicBlock / BottleneckBlock (`conv0..conv2`, `short`),
blocks registered as `bb_{stage}_{i}`, classifier `out` with `class_dim` outputs, written with
today's `paddle.nn` instead of `paddle.fluid`. Paddle's Linear stores its weight `[in, out]`.
`ResNet(spec)` builds any preset; `resnet(layers=50, class_dim=1000)` is the classic source's
entry point, for its five depths. ResNet-D follows the classic vd source: a ConvBNLayer in
`is_vd_mode` averages 2x2 windows (`_pool2d_avg`) before its stride-1 conv, and the deep stem is
`conv1_1`, `conv1_2`, `conv1_3`. NHWC is a per-layer argument in Paddle: every conv, batch norm and
pool is told; the weights stay OIHW, so a checkpoint loads into either layout.
"""
from __future__ import annotations

import math
from functools import partial

import paddle
from paddle import nn

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import BlockPlan, ResNetSpec, get_spec, has_max_pool, stages, stem_convs

SUPPORTED_LAYERS = (18, 34, 50, 101, 152)  # the classic source's depths; other presets come from the spec


_NATIVE_UNBIASED: dict[str, bool] = {}  # device -> Paddle's own BatchNorm2D feeds the unbiased variance


def native_running_var_is_unbiased(device: str | None = None) -> bool:
    """Whether paddle.nn.BatchNorm2D feeds `_variance` the unbiased batch variance on `device` (default: the
    current one), measured once per device on a 4-D input (the kernel path a model takes) and cached.
    Paddle's CPU kernel feeds the biased one; on GPUs cuDNN keeps its own convention."""
    device = device or paddle.get_device()
    if device not in _NATIVE_UNBIASED:
        bn = nn.BatchNorm2D(1, momentum=0.0)  # running = the fed batch variance
        bn.train()
        x = paddle.to_tensor([0.0, 2.0] * 4, place=paddle.CPUPlace() if device == "cpu" else None)
        with paddle.no_grad():
            bn(x.reshape([2, 1, 2, 2]))  # n = 8, mean 1: biased variance 1, unbiased 8/7
        fed = float(bn._variance.numpy()[0])
        _NATIVE_UNBIASED[device] = abs(fed - 8.0 / 7.0) < abs(fed - 1.0)
    return _NATIVE_UNBIASED[device]


class BatchNorm2D(nn.BatchNorm2D):
    """paddle.nn.BatchNorm2D whose running variance is fed the batch variance the spec asks for.

    `spec.bn_running_var` "unbiased" (PyTorch's) or "biased": this layer rescales Paddle's native update
    when the device's native convention differs (measured per device: biased on CPU); "native" keeps it.
    Paddle's `momentum` is the weight of the *old* running value: 1 - spec.bn_momentum.
    Scale 1 and shift 0 at start; scale 0 on the BN that ends a residual branch when
    `spec.zero_init_residual`.
    """

    def __init__(self, num_features: int, spec: ResNetSpec, ends_residual_branch: bool = False,
                 data_format: str = "NCHW") -> None:
        zero_init = ends_residual_branch and spec.zero_init_residual  # the residual branch starts as zero
        scale = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if zero_init else None
        super().__init__(num_features, momentum=1.0 - spec.bn_momentum, epsilon=spec.bn_eps, weight_attr=scale,
                         data_format=data_format)
        wanted = spec.bn_running_var
        native = "unbiased" if native_running_var_is_unbiased() else "biased"
        # +1: multiply the fed variance by n/(n-1); -1: by (n-1)/n; 0: keep Paddle's update
        self.running_var_rescale = 0 if wanted in ("native", native) else (1 if wanted == "unbiased" else -1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not (self.training and self.running_var_rescale):
            return super().forward(x)
        n = math.prod(x.shape) // self._num_features  # from the shape: no device sync, traceable by to_static
        factor = n / (n - 1) if self.running_var_rescale > 0 else (n - 1) / n
        old_var = self._variance.clone()
        y = super().forward(x)
        with paddle.no_grad():  # new = m*old + (1-m)*fed  ->  m*old + (1-m)*fed*factor
            new_term = self._variance - self._momentum * old_var
            # set_value, not paddle.assign: the batch_norm op keeps `_variance` for its backward, and an
            # in-place assign would bump its version and fail the backward pass
            self._variance.set_value(self._momentum * old_var + new_term * factor)
        return y


class ConvBNLayer(nn.Layer):
    """Conv (no bias) + BN (+ ReLU); padding (k - 1) // 2 as in the classic source. In `is_vd_mode`
    a 2x2/2 average pool (ceil mode; `exclusive`: padding left out of the average) comes first and
    the conv takes stride 1, as the classic vd source's shortcut."""

    def __init__(self, num_channels: int, num_filters: int, filter_size: int, spec: ResNetSpec,
                 stride: int = 1, groups: int = 1, act: str | None = None, ends_residual_branch: bool = False,
                 is_vd_mode: bool = False, data_format: str = "NCHW") -> None:
        super().__init__()
        self.is_vd_mode = is_vd_mode
        if is_vd_mode:
            self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True, exclusive=True,
                                            data_format=data_format)
        self._conv = nn.Conv2D(num_channels, num_filters, filter_size, stride=1 if is_vd_mode else stride,
                               padding=(filter_size - 1) // 2, groups=groups, bias_attr=False, data_format=data_format)
        self._batch_norm = BatchNorm2D(num_filters, spec, ends_residual_branch, data_format)
        self._act = nn.ReLU() if act == "relu" else None

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        if self.is_vd_mode:
            inputs = self._pool2d_avg(inputs)
        y = self._batch_norm(self._conv(inputs))
        return self._act(y) if self._act is not None else y


class BasicBlock(nn.Layer):
    def __init__(self, plan: BlockPlan, spec: ResNetSpec, data_format: str = "NCHW") -> None:
        super().__init__()
        layer = partial(ConvBNLayer, spec=spec, data_format=data_format)
        self.conv0 = layer(plan.in_channels, plan.mid_channels, 3, stride=plan.stride, act="relu")
        self.conv1 = layer(plan.mid_channels, plan.out_channels, 3, ends_residual_branch=True)
        self.shortcut = not plan.downsample
        if not self.shortcut:
            self.short = layer(plan.in_channels, plan.out_channels, 1, stride=plan.stride, is_vd_mode=plan.pool)

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        conv1 = self.conv1(self.conv0(inputs))
        short = inputs if self.shortcut else self.short(inputs)
        return nn.functional.relu(paddle.add(short, conv1))


class BottleneckBlock(nn.Layer):
    def __init__(self, plan: BlockPlan, spec: ResNetSpec, data_format: str = "NCHW") -> None:
        super().__init__()
        layer = partial(ConvBNLayer, spec=spec, data_format=data_format)
        self.conv0 = layer(plan.in_channels, plan.mid_channels, 1, act="relu")
        self.conv1 = layer(plan.mid_channels, plan.mid_channels, 3, stride=plan.stride, groups=spec.groups, act="relu")
        self.conv2 = layer(plan.mid_channels, plan.out_channels, 1, ends_residual_branch=True)
        self.shortcut = not plan.downsample
        if not self.shortcut:
            self.short = layer(plan.in_channels, plan.out_channels, 1, stride=plan.stride, is_vd_mode=plan.pool)

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        conv2 = self.conv2(self.conv1(self.conv0(inputs)))
        short = inputs if self.shortcut else self.short(inputs)
        return nn.functional.relu(paddle.add(short, conv2))


class ResNet(nn.Layer):
    """`forward` returns logits; `forward_stages` returns every named stage output (in `data_format`:
    "NCHW", or "NHWC", which the benchmarks use for bf16 on a GPU)."""

    def __init__(self, spec: ResNetSpec, data_format: str = "NCHW") -> None:
        super().__init__()
        self.spec = spec
        convs = stem_convs(spec)  # the classic source's `conv`, or the vd source's conv1_1..conv1_3
        names = ["conv"] if len(convs) == 1 else [f"conv1_{i}" for i in range(1, len(convs) + 1)]
        self.stem = [self.add_sublayer(name, ConvBNLayer(c.in_channels, c.out_channels, c.kernel, spec,
                                                         stride=c.stride, act="relu", data_format=data_format))
                     for name, c in zip(names, convs)]
        self.pool2d_max = (nn.MaxPool2D(3, stride=2, padding=1, data_format=data_format) if has_max_pool(spec)
                           else nn.Identity())
        block = BasicBlock if spec.block == "basic" else BottleneckBlock
        self.stage_blocks: list[list[nn.Layer]] = []  # registered as bb_{stage - 1}_{index}, as the classic source
        for stage, plans in stages(spec):
            self.stage_blocks.append([self.add_sublayer(f"bb_{stage - 1}_{plan.index}", block(plan, spec, data_format))
                                      for plan in plans])
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1, data_format=data_format)
        stdv = 1.0 / math.sqrt(spec.feature_dim * 1.0)
        self.out = nn.Linear(spec.feature_dim, spec.num_classes,
                             weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-stdv, stdv)))

    def forward_stages(self, inputs: paddle.Tensor) -> dict[str, paddle.Tensor]:
        y = inputs
        for layer in self.stem:
            y = layer(y)
        y = self.pool2d_max(y)
        out = {"stem": y}
        for i, blocks in enumerate(self.stage_blocks):  # no `start=`: paddle.jit.to_static cannot convert it
            for block in blocks:
                y = block(y)
            out[f"layer{i + 1}"] = y
        out["pooled"] = paddle.flatten(self.pool2d_avg(y), 1)
        out["logits"] = self.out(out["pooled"])
        return out

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        return self.forward_stages(inputs)["logits"]


def resnet(layers: int = 50, class_dim: int = 1000) -> ResNet:
    """The classic source's `ResNet(layers=50, class_dim=1000)`: the torchvision-depth preset with
    `class_dim` classes; other depths are refused with the classic message."""
    if layers not in SUPPORTED_LAYERS:
        raise UserError(f"supported layers are {SUPPORTED_LAYERS} but input layer is {layers}")
    return ResNet(get_spec(f"resnet{layers}").replace(num_classes=class_dim))
