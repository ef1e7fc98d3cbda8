"""Determinism switches (`resnet-rosetta explain determinism`): every fact of guide/topics.py's 'determinism' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import paddle
import pytest
import torch

from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.flax.files import flatten
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet

from guide_helpers import INIT_SPEC, paddle_flag


# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {"same_seed_same_weights": {"torch": True, "paddle": True, "flax": True},
          "other_draw_changes_weights": {"torch": True, "paddle": True, "flax": False},
          "torch_deterministic_by_default": False,
          "paddle_cpu_has_cudnn_deterministic_flag": False}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_seeded_init_is_reproducible(framework: str) -> None:
    def weights(seed: int) -> dict[str, np.ndarray]:
        model = load(framework, "demos").seeded_model(INIT_SPEC, seed)
        if framework == "flax":
            return flatten(model)
        return {k: v.numpy() for k, v in model.state_dict().items()}

    first, again, other = weights(3), weights(3), weights(4)
    assert all(np.array_equal(first[k], again[k]) for k in first) == CLAIMS["same_seed_same_weights"][framework]
    assert not np.array_equal(first[next(iter(first))], other[next(iter(other))])


def test_global_generators_are_shared() -> None:
    changes = CLAIMS["other_draw_changes_weights"]
    seeded = torch_demos.seeded_model(INIT_SPEC, 3).conv1.weight
    torch.manual_seed(3)
    torch.rand(1)  # anyone else drawing first
    assert (not torch.equal(TorchResNet(INIT_SPEC).conv1.weight, seeded)) == changes["torch"]
    seeded_paddle = paddle_demos.seeded_model(INIT_SPEC, 3).conv._conv.weight.numpy()
    paddle.seed(3)
    paddle.rand([1])
    assert (not np.array_equal(PaddleResNet(INIT_SPEC).conv._conv.weight.numpy(), seeded_paddle)) == changes["paddle"]
    first = flatten(flax_demos.seeded_model(INIT_SPEC, 3))["params/conv1/kernel"]
    jax.random.normal(jax.random.key(3), (1,))  # the same key used elsewhere: keys are values, not state
    np.random.default_rng(3).normal(size=1), np.random.normal(size=1), torch.rand(1), paddle.rand([1])
    again = flatten(flax_demos.seeded_model(INIT_SPEC, 3))["params/conv1/kernel"]
    other = flatten(flax_demos.seeded_model(INIT_SPEC, 4))["params/conv1/kernel"]
    assert (not np.array_equal(again, first)) == changes["flax"]
    assert np.abs(other - first).max() > 1e-2  # the key decides the draw: equality above is not vacuous


def test_deterministic_switches(fresh_defaults: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert fresh_defaults["torch_deterministic"] is CLAIMS["torch_deterministic_by_default"]
    assert fresh_defaults["torch_cudnn_benchmark"] is False
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    monkeypatch.setenv("XLA_FLAGS", "")
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        torch_demos.deterministic_kernels()
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
    flax_demos.deterministic_kernels()
    assert "--xla_gpu_deterministic_ops=true" in os.environ["XLA_FLAGS"]
    if not paddle.is_compiled_with_cuda():
        has_flag = paddle_flag("FLAGS_cudnn_deterministic") != "absent"
        assert has_flag == CLAIMS["paddle_cpu_has_cudnn_deterministic_flag"]
        paddle_demos.deterministic_kernels()  # a no-op on the CPU wheel, not an error
