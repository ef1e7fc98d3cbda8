"""The bugs of the broken-port catalogue (tests/parity/test_catalogue.py), each planted by `plant(id, mp)`.

Each is a small deliberate mistake a real port makes, planted in ONE framework with a
`pytest.MonkeyPatch`: in the framework's own functions (`torch.nn.functional.batch_norm`,
`torch.optim.SGD`, Paddle's `batch_norm` and `Momentum`, optax's loss, linen's `Conv`), in this
project's model classes or instances, or in the weight converter's rule table. With `user=True` a
bug of the model is written into the user-style models of `user_models/` (torch_resnet,
paddle_resnet, flax_resnet, built by user_models/catalogue_ports.py) instead of ours, in their own
names; the others patch what a user's model runs through too. `worker_site/` plants them in
parity's isolated workers.
"""
from __future__ import annotations

import importlib
from functools import partial
from typing import Any, Callable

import pytest

from resnet_rosetta.common import rules

Plant = Callable[[pytest.MonkeyPatch, bool], None]
BUGS: dict[str, Plant] = {}


def bug(plant: Plant) -> Plant:
    BUGS[plant.__name__] = plant
    return plant


def plant(name: str, mp: pytest.MonkeyPatch, user: bool = False) -> None:
    """Plant bug `name`: in our port, or with `user` in the user-style models (user_models/ on sys.path)."""
    BUGS[name](mp, user)


def _model(framework: str, user: bool) -> Any:
    """The module whose models a bug of the model is written into: ours, or the user's."""
    return importlib.import_module(f"{framework}_resnet" if user else f"resnet_rosetta.frameworks.{framework}.model")


def _after_init(mp: pytest.MonkeyPatch, cls: type, edit: Callable[[Any], None]) -> None:
    """Every model `cls` builds from now on is edited by `edit` right after its own __init__."""
    init = cls.__init__

    def edited(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        edit(self)
    mp.setattr(cls, "__init__", edited)


# ---- torch -------------------------------------------------------------------------------------

def _torch_batch_norm(stats: Callable[[Any], tuple[Any, Any]]) -> Callable[..., Any]:
    """torch's F.batch_norm, but a train-mode forward normalises with `stats(x)` -> (mean, var);
    the running statistics are still fed by torch's own kernel."""
    import torch
    original = torch.nn.functional.batch_norm

    def batch_norm(x: Any, mean: Any, var: Any, weight: Any = None, bias: Any = None, training: bool = False,
                   momentum: float = 0.1, eps: float = 1e-5) -> Any:
        if not training:
            return original(x, mean, var, weight, bias, training, momentum, eps)
        with torch.no_grad():
            original(x, mean, var, None, None, True, momentum, eps)
        m, v = stats(x)
        return (x - m) * torch.rsqrt(v + eps) * weight[:, None, None] + bias[:, None, None]
    return batch_norm


@bug
def torch_bn_train_eps(mp: pytest.MonkeyPatch, user: bool) -> None:
    import torch
    original = torch.nn.functional.batch_norm

    def batch_norm(x: Any, mean: Any, var: Any, weight: Any = None, bias: Any = None, training: bool = False,
                   momentum: float = 0.1, eps: float = 1e-5) -> Any:
        return original(x, mean, var, weight, bias, training, momentum, 1e-3 if training else eps)
    mp.setattr(torch.nn.functional, "batch_norm", batch_norm)


@bug
def torch_bn_train_eps_one_layer(mp: pytest.MonkeyPatch, user: bool) -> None:
    def edit(net: Any) -> None:
        bn, eps = net.layer4[0].bn2, net.layer4[0].bn2.eps

        def forward(x: Any) -> Any:
            bn.eps = 1e-4 if bn.training else eps
            return type(bn).forward(bn, x)
        bn.forward = forward
    _after_init(mp, _model("torch", user).ResNet, edit)


@bug
def torch_bn_unbiased_norm(mp: pytest.MonkeyPatch, user: bool) -> None:
    import torch
    mp.setattr(torch.nn.functional, "batch_norm", _torch_batch_norm(
        lambda x: (x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), keepdim=True, correction=1))))


@bug
def torch_bn_per_sample_axes(mp: pytest.MonkeyPatch, user: bool) -> None:
    import torch
    mp.setattr(torch.nn.functional, "batch_norm", _torch_batch_norm(
        lambda x: (x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, correction=0))))


@bug
def torch_bn_detached_stats(mp: pytest.MonkeyPatch, user: bool) -> None:
    norm = _torch_batch_norm(lambda x: (x.mean((0, 2, 3), keepdim=True).detach(),
                                        x.var((0, 2, 3), keepdim=True, correction=0).detach()))

    def edit(net: Any) -> None:
        bn = net.layer3[0].bn1
        bn.forward = lambda x: norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training,
                                    bn.momentum, bn.eps)
    _after_init(mp, _model("torch", user).ResNet, edit)


@bug
def torch_maxpool_unpadded(mp: pytest.MonkeyPatch, user: bool) -> None:
    from torch import nn
    _after_init(mp, _model("torch", user).ResNet,
                lambda net: setattr(net, "maxpool", nn.MaxPool2d(3, 2, padding=0, ceil_mode=True)))


@bug
def torch_downsample_offset(mp: pytest.MonkeyPatch, user: bool) -> None:
    def edit(net: Any) -> None:
        for name, module in net.named_modules():
            if name.endswith("downsample.0"):
                module.register_forward_pre_hook(lambda _m, args: (args[0][..., 1:, 1:],))
    _after_init(mp, _model("torch", user).ResNet, edit)


def _torch_sgd(mp: pytest.MonkeyPatch, **changes: Callable[[Any], Any]) -> None:
    """torch.optim.SGD whose keyword arguments go through `changes` (name -> what the port passes)."""
    import torch
    sgd = torch.optim.SGD

    class SGD(sgd):  # type: ignore[misc,valid-type]
        def __init__(self, params: Any, **kwargs: Any) -> None:
            super().__init__(params, **{k: changes[k](kwargs) if k in changes else v for k, v in kwargs.items()})
    mp.setattr(torch.optim, "SGD", SGD)


@bug
def torch_sgd_nesterov(mp: pytest.MonkeyPatch, user: bool) -> None:
    _torch_sgd(mp, nesterov=lambda kw: True)


@bug
def torch_sgd_dampening(mp: pytest.MonkeyPatch, user: bool) -> None:
    _torch_sgd(mp, dampening=lambda kw: kw["momentum"])


@bug
def torch_sgd_lr_one_percent_low(mp: pytest.MonkeyPatch, user: bool) -> None:
    _torch_sgd(mp, lr=lambda kw: kw["lr"] * 0.99)


@bug
def torch_momentum_not_carried(mp: pytest.MonkeyPatch, user: bool) -> None:
    from resnet_rosetta.frameworks.torch import training
    step = training.Trainer.step

    def fresh_optimizer_step(self: Any, x: Any, y: Any) -> float:
        self.optimizer.state.clear()
        return step(self, x, y)
    mp.setattr(training.Trainer, "step", fresh_optimizer_step)


@bug
def torch_running_stats_not_carried(mp: pytest.MonkeyPatch, user: bool) -> None:
    import torch

    from resnet_rosetta.frameworks.torch import training
    step = training.Trainer.step

    def restoring_step(self: Any, x: Any, y: Any) -> float:
        saved = [b.clone() for b in self.model.buffers()]  # as a functional_call over copied buffers loses them
        loss = step(self, x, y)
        with torch.no_grad():
            for b, old in zip(self.model.buffers(), saved):
                b.copy_(old)
        return loss
    mp.setattr(training.Trainer, "step", restoring_step)


# ---- paddle ------------------------------------------------------------------------------------

def _paddle_batch_norms(net: Any) -> list[Any]:
    import paddle
    return [layer for layer in net.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)]


@bug
def paddle_bn_eps_one_layer(mp: pytest.MonkeyPatch, user: bool) -> None:
    layer = (lambda net: net.layer3[0].bn1) if user else (lambda net: net.bb_2_0.conv0._batch_norm)
    _after_init(mp, _model("paddle", user).ResNet, lambda net: setattr(layer(net), "_epsilon", 1e-4))


@bug
def paddle_bn_keras_eps(mp: pytest.MonkeyPatch, user: bool) -> None:
    import paddle.nn.layer.norm as norm
    original = norm.batch_norm
    mp.setattr(norm, "batch_norm", lambda *args, **kwargs: original(*args, **{**kwargs, "epsilon": 1.001e-5}))


@bug
def paddle_bn_momentum_torch_convention(mp: pytest.MonkeyPatch, user: bool) -> None:
    def edit(net: Any) -> None:
        for bn in _paddle_batch_norms(net):
            bn._momentum = 1.0 - bn._momentum  # torch's 0.1, where Paddle weighs the old value: 0.9
    _after_init(mp, _model("paddle", user).ResNet, edit)


@bug
def paddle_bn_biased_running_var(mp: pytest.MonkeyPatch, user: bool) -> None:
    import paddle

    def edit(net: Any) -> None:
        for bn in _paddle_batch_norms(net):
            if user:  # the user's layers are Paddle's own BatchNorm2D, as is
                bn.forward = partial(paddle.nn.BatchNorm2D.forward, bn)
            else:
                bn.running_var_rescale = 0  # Paddle's own CPU update: the biased batch variance
    _after_init(mp, _model("paddle", user).ResNet, edit)


@bug
def paddle_stride_on_1x1(mp: pytest.MonkeyPatch, user: bool) -> None:
    def edit(block: Any) -> None:
        one, three = (block.conv1, block.conv2) if user else (block.conv0._conv, block.conv1._conv)
        if three._stride == [2, 2]:  # ResNet v1: the first 1x1 strides, the 3x3 does not
            one._stride, three._stride = [2, 2], [1, 1]
    _after_init(mp, _model("paddle", user).BottleneckBlock, edit)


@bug
def paddle_groups_interleaved(mp: pytest.MonkeyPatch, user: bool) -> None:
    def shuffle(layer: Any, inputs: tuple) -> tuple:
        x, g = inputs[0], layer._groups
        n, c, h, w = x.shape
        return (x.reshape([n, g, c // g, h, w]).transpose([0, 2, 1, 3, 4]).reshape([n, c, h, w]),)
    grouped = (lambda block: block.conv2) if user else (lambda block: block.conv1._conv)
    _after_init(mp, _model("paddle", user).BottleneckBlock,
                lambda block: grouped(block).register_forward_pre_hook(shuffle))


@bug
def paddle_downsample_avg_pool(mp: pytest.MonkeyPatch, user: bool) -> None:
    from paddle import nn

    def pooled(_conv: Any, inputs: tuple) -> tuple:
        return (nn.functional.avg_pool2d(inputs[0], 2, 2, ceil_mode=True, exclusive=True),)

    def edit(block: Any) -> None:
        if user:  # the user's downsample: Sequential(1x1 conv, BN); the pool goes in front of the conv
            conv = block.downsample[0] if block.downsample is not None else None
            if conv is not None and conv._stride == [2, 2]:
                conv._stride = [1, 1]
                conv.register_forward_pre_hook(pooled)
            return
        short = getattr(block, "short", None)
        if short is not None and short._conv._stride == [2, 2]:  # the vd shortcut: pool 2x2, then a 1x1 conv
            short.is_vd_mode, short._conv._stride = True, [1, 1]
            short._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True, exclusive=True)
    _after_init(mp, _model("paddle", user).BasicBlock, edit)


@bug
def paddle_linear_untransposed(mp: pytest.MonkeyPatch, user: bool) -> None:
    fc = rules.LEAF_RULES[("fc", "weight")]
    for layout in ("paddle", "paddle-vision", "paddleclas"):  # every Paddle layout a user's model may have
        mp.setitem(fc, layout, fc["torch"])


def _paddle_momentum(mp: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """paddle.optimizer.Momentum, built from the keyword arguments `change` makes of the right ones."""
    import paddle
    momentum = paddle.optimizer.Momentum

    class Momentum(momentum):  # type: ignore[misc,valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**change(kwargs))
    mp.setattr(paddle.optimizer, "Momentum", Momentum)


@bug
def paddle_no_weight_decay(mp: pytest.MonkeyPatch, user: bool) -> None:
    _paddle_momentum(mp, lambda kw: {**kw, "weight_decay": None})


@bug
def paddle_no_decay_on_bn_and_bias(mp: pytest.MonkeyPatch, user: bool) -> None:
    def groups(kw: dict[str, Any]) -> dict[str, Any]:
        params = kw["parameters"]
        return {**kw, "parameters": [{"params": [p for p in params if len(p.shape) > 1]},
                                     {"params": [p for p in params if len(p.shape) == 1], "weight_decay": 0.0}]}
    _paddle_momentum(mp, groups)


@bug
def paddle_momentum_one_minus(mp: pytest.MonkeyPatch, user: bool) -> None:
    _paddle_momentum(mp, lambda kw: {**kw, "momentum": 1.0 - kw["momentum"]})


# ---- flax --------------------------------------------------------------------------------------

@bug
def flax_same_padding(mp: pytest.MonkeyPatch, user: bool) -> None:
    from flax import linen

    from broken_ports import SameConv
    mp.setattr(linen, "Conv", SameConv)


@bug
def flax_kernel_hw_swapped(mp: pytest.MonkeyPatch, user: bool) -> None:
    conv = rules.LEAF_RULES[("conv", "weight")]
    swap = lambda a: a.transpose(3, 2, 1, 0).copy()  # noqa: E731  OIHW <-> WHIO: self-inverse
    mp.setitem(conv, "flax", (conv["flax"][0], swap, swap))


def _flax_norm(mp: pytest.MonkeyPatch, make: Callable[..., Any]) -> None:
    from resnet_rosetta.frameworks.flax import model
    mp.setattr(model, "BatchNorm", make)


@bug
def flax_bn_default_momentum(mp: pytest.MonkeyPatch, user: bool) -> None:
    if user:  # the user's torch-like norm without its momentum: linen's default 0.99
        mp.setattr(_model("flax", True), "TorchNorm", partial(_model("flax", True).TorchBatchNorm, epsilon=1e-5))
        return
    from resnet_rosetta.frameworks.flax import model
    norm = model.BatchNorm  # linen.BatchNorm's default momentum 0.99 (torch's 0.1 is 0.9 there)
    _flax_norm(mp, lambda spec, **kw: norm(spec=spec.replace(bn_momentum=0.01), **kw))


@bug
def flax_linen_batch_norm(mp: pytest.MonkeyPatch, user: bool) -> None:
    from flax import linen
    if user:  # the user's norm is linen's own (flax_resnet.Norm: momentum 0.9, epsilon 1e-5)
        mp.setattr(_model("flax", True), "TorchNorm", _model("flax", True).Norm)
        return
    _flax_norm(mp, lambda spec, use_running_average, ends_residual_branch=False, name=None: linen.BatchNorm(
        use_running_average=use_running_average, momentum=1.0 - spec.bn_momentum, epsilon=spec.bn_eps, name=name))


@bug
def flax_downsample_without_bn(mp: pytest.MonkeyPatch, user: bool) -> None:
    if user:  # the user's block declares its downsample_bn (its variables exist) but adds the conv's output
        norm = _model("flax", True).TorchNorm

        def forgotten(*, name: str, **kw: Any) -> Any:
            layer = norm(name=name, **kw)
            return (lambda x: (layer(x), x)[1]) if name == "downsample_bn" else layer
        mp.setattr(_model("flax", True), "TorchNorm", forgotten)
        return
    from resnet_rosetta.frameworks.flax import model

    def shortcut(block: Any, x: Any) -> Any:
        p, s = block.plan, block.plan.shortcut_stride
        if not p.downsample:
            return x
        return block.conv(p.out_channels, (1, 1), (s, s), padding=((0, 0), (0, 0)), name="downsample_conv")(x)
    mp.setattr(model, "_shortcut", shortcut)


@bug
def flax_loss_summed(mp: pytest.MonkeyPatch, user: bool) -> None:
    import optax
    original = optax.softmax_cross_entropy_with_integer_labels
    mp.setattr(optax, "softmax_cross_entropy_with_integer_labels",
               lambda logits, labels, **kw: original(logits, labels, **kw) * logits.shape[0])  # mean() is then a sum
