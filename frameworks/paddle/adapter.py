"""The common surface over the Paddle model: canonical weights in and out, forward on NumPy."""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import paddle

from ...common import rules
from ...common.canonical import Weights
from ...common.spec import ResNetSpec
from .model import ResNet

NATIVE_FORMAT = "paddle"


class Adapter:
    """A Paddle ResNet holding the given canonical weights (CPU unless `device` says otherwise)."""

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu") -> None:
        self.spec = spec
        paddle.set_device(device)
        self.model = ResNet(spec)
        self.load(weights)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        native = rules.to_native(weights, self.spec, NATIVE_FORMAT)
        missing, unexpected = self.model.set_state_dict(native)
        assert not missing and not unexpected, (missing, unexpected)

    def canonical_weights(self) -> Weights:
        native = {k: v.numpy() for k, v in self.model.state_dict().items()}
        return rules.from_native(native, self.spec, NATIVE_FORMAT, "paddle model")

    def forward(self, x: np.ndarray, train: bool = False) -> dict[str, np.ndarray]:
        """Named stage outputs (NCHW NumPy) for an NCHW batch; train=True uses batch statistics."""
        self.model.train() if train else self.model.eval()
        with paddle.no_grad():
            out = self.model.forward_stages(paddle.to_tensor(np.ascontiguousarray(x)))
        return {k: v.numpy() for k, v in out.items()}


def parity_numerics(seed: int = 0) -> dict[str, object]:
    """Deterministic cuDNN and no TF32 where this Paddle build has CUDA; returns what was set."""
    paddle.seed(seed)
    settings: dict[str, object] = {"version": paddle.__version__, "cuda_build": paddle.is_compiled_with_cuda()}
    if paddle.is_compiled_with_cuda():
        flags = {"FLAGS_cudnn_deterministic": True, "FLAGS_embedding_deterministic": 1}
        paddle.set_flags(flags)
        settings.update(flags)
    settings["NVIDIA_TF32_OVERRIDE"] = os.environ.get("NVIDIA_TF32_OVERRIDE", "unset")
    return settings
