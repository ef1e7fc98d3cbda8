"""PyTorch side of the guide's demonstrations; mirrored in frameworks/paddle/demos.py and frameworks/flax/demos.py.

The functions above the line are shown in the guide (`resnet-rosetta explain`) and run by
tests/guide/; the ones below it feed `explain --measure`.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from resnet_rosetta.common.canonical import Weights
from resnet_rosetta.common.spec import ResNetSpec
from .adapter import Adapter
from .model import ResNet


def compile_model(model: nn.Module, backend: str | Callable = "inductor") -> Callable[[Tensor], Tensor]:
    """TorchDynamo captures the graph on the first call; Inductor generates C++ (CPU) or Triton (GPU) code."""
    return torch.compile(model.eval(), backend=backend)


def bf16_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Autocast: convolutions and matmuls run in bfloat16, the parameters stay float32."""
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16):
        return model(x)


def full_fp32_precision() -> None:
    """TF32 off for cuBLAS matmuls (already off by default) and for cuDNN convolutions (on by default)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def inference_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Inside no_grad nothing is recorded: the logits do not require grad and keep no activations alive."""
    with torch.no_grad():
        return model.eval()(x)


def frozen_features(features: Tensor) -> Tensor:
    """detach: the same values (sharing storage), cut from the graph: no gradient flows back through them."""
    return features.detach()


def dropout_features(x: Tensor, rate: float, train: bool) -> Tensor:
    """nn.Dropout draws its mask from the global generator and scales kept values by 1/(1-rate); in eval()
    it is the identity, switched by the same flag as batch norm."""
    layer = nn.Dropout(rate).train(train)
    return layer(x)


def channels_last(model: nn.Module, x: Tensor) -> tuple[nn.Module, Tensor]:
    """NHWC in memory, NCHW in shape: only the strides change, and every later op keeps them."""
    return model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)


def seeded_model(spec: ResNetSpec, seed: int) -> ResNet:
    """Initialisation draws from the global generator: seed it right before building."""
    torch.manual_seed(seed)
    return ResNet(spec)


def deterministic_kernels() -> None:
    """Raise on ops without a deterministic kernel; no cuDNN autotuning, which may pick other kernels per run."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS needs a fixed workspace
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------- measurement glue

def forward_calls(spec: ResNetSpec, weights: Weights, x: np.ndarray) -> tuple[Callable[[], object], ...]:
    """(eager call, compiled call) of one inference forward on `x`."""
    model = Adapter(spec, weights).model.eval()
    compiled = compile_model(model)
    xt = torch.from_numpy(x)

    def eager() -> object:
        with torch.no_grad():
            return model(xt).numpy()

    def jitted() -> object:
        with torch.no_grad():
            return compiled(xt).numpy()

    return eager, jitted


def bf16_run(spec: ResNetSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """Logits of `bf16_logits` as float32 NumPy."""
    return bf16_logits(Adapter(spec, weights).model.eval(), torch.from_numpy(x)).float().numpy()
