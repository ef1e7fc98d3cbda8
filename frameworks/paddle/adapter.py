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

    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs (NCHW NumPy) for an NCHW batch; train=True uses batch statistics.

        With `feed` (stage name -> array), every stage's input is replaced by the fed output of
        the stage before it (forward pre-hooks), so each stage is measured on its own.
        """
        self.model.train() if train else self.model.eval()
        hooks = []
        for layer, source in ([] if feed is None else _stage_inputs(self.model)):
            fed = paddle.to_tensor(np.ascontiguousarray(feed[source]))  # type: ignore[index]
            hooks.append(layer.register_forward_pre_hook(lambda _layer, _inputs, fed=fed: (fed,)))
        try:
            with paddle.no_grad():
                out = self.model.forward_stages(paddle.to_tensor(np.ascontiguousarray(x)))
        finally:
            for hook in hooks:
                hook.remove()
        return {k: v.numpy() for k, v in out.items()}


def _stage_inputs(model: ResNet) -> list[tuple[paddle.nn.Layer, str]]:
    """(layer that starts a stage, name of the stage output it consumes): first blocks and `out`."""
    firsts = [(layer, "stem" if stage == 1 else f"layer{stage - 1}")
              for i, (stage, layer) in enumerate(model.block_list) if i == 0 or model.block_list[i - 1][0] != stage]
    return firsts + [(model.out, "pooled")]


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
