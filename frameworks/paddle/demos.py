"""Paddle side of the guide's demonstrations; mirrored in frameworks/torch/demos.py and frameworks/flax/demos.py.

The functions above the line are shown in the guide (`resnet-rosetta explain`) and run by
tests/guide/; the ones below it feed `explain --measure`.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import paddle

from resnet_rosetta.common.canonical import Weights
from resnet_rosetta.common.spec import ResNetSpec
from .adapter import Adapter
from .model import ResNet


def compile_model(model: paddle.nn.Layer) -> Callable[[paddle.Tensor], paddle.Tensor]:
    """full_graph=True: dy2static rewrites forward's Python source into a static program, one per input shape
    (the default, SOT, translates bytecode and makes the batch dynamic after the first new shape)."""
    model.eval()
    return paddle.jit.to_static(model, full_graph=True)


def bf16_logits(model: paddle.nn.Layer, x: paddle.Tensor) -> paddle.Tensor:
    """auto_cast works on CUDA, XPU and custom devices; on a CPU it warns, switches itself off, and
    everything stays float32."""
    with paddle.no_grad(), paddle.amp.auto_cast(dtype="bfloat16"):
        return model(x)


def full_fp32_precision() -> None:
    """TF32 off for cuBLAS and cuDNN (both on by default in GPU builds; the CPU wheel has the switches but
    no kernel reads them); NVIDIA's libraries also honour the variable when they load."""
    paddle.base.core.set_cublas_switch(False)
    paddle.base.core.set_cudnn_switch(False)
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"


def inference_logits(model: paddle.nn.Layer, x: paddle.Tensor) -> paddle.Tensor:
    """Inside no_grad nothing is recorded: the logits have stop_gradient=True and keep no activations alive."""
    model.eval()
    with paddle.no_grad():
        return model(x)


def frozen_features(features: paddle.Tensor) -> paddle.Tensor:
    """detach: the same values, cut from the graph (stop_gradient=True): no gradient flows back through them."""
    return features.detach()


def dropout_features(x: paddle.Tensor, rate: float, train: bool) -> paddle.Tensor:
    """nn.Dropout draws its mask from the global generator and ('upscale_in_train', the default) scales kept
    values by 1/(1-rate); in eval() it is the identity, switched by the same flag as batch norm."""
    layer = paddle.nn.Dropout(rate)
    layer.train() if train else layer.eval()
    return layer(x)


def nhwc_conv_bn(in_channels: int, out_channels: int) -> paddle.nn.Layer:
    """NHWC is a per-layer argument: every conv, batch norm and pool must say it; the weights stay OIHW."""
    return paddle.nn.Sequential(
        paddle.nn.Conv2D(in_channels, out_channels, 3, padding=1, bias_attr=False, data_format="NHWC"),
        paddle.nn.BatchNorm2D(out_channels, data_format="NHWC"))


def seeded_model(spec: ResNetSpec, seed: int) -> ResNet:
    """Initialisation draws from the global generator: seed it right before building."""
    paddle.seed(seed)
    return ResNet(spec)


def deterministic_kernels() -> None:
    """cuDNN switches exist only in GPU builds; the CPU wheel does not know these flags."""
    if paddle.is_compiled_with_cuda():
        paddle.set_flags({"FLAGS_cudnn_deterministic": True, "FLAGS_cudnn_exhaustive_search": False})


# ---------------------------------------------------------------- measurement glue

def forward_calls(spec: ResNetSpec, weights: Weights, x: np.ndarray) -> tuple[Callable[[], object], ...]:
    """(eager call, compiled call) of one inference forward on `x`, on two models: to_static converts in place."""
    model = Adapter(spec, weights).model
    model.eval()
    compiled = compile_model(Adapter(spec, weights).model)
    xt = paddle.to_tensor(x)

    def eager() -> object:
        with paddle.no_grad():
            return model(xt).numpy()

    def jitted() -> object:
        with paddle.no_grad():
            return compiled(xt).numpy()

    return eager, jitted


def bf16_run(spec: ResNetSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """Logits of `bf16_logits` as float32 NumPy."""
    model = Adapter(spec, weights).model
    model.eval()
    return bf16_logits(model, paddle.to_tensor(x)).astype("float32").numpy()
