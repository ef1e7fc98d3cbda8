"""Batch norm: momentum and running variance (`resnet-rosetta explain batchnorm`): every fact of guide/topics.py's 'batchnorm' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch
from flax import linen as nn

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.guide.pitfalls import TOLERANCE_KIND, Bench


# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {
    "new_batch_weight": {"torch": 0.25, "paddle": 0.75, "flax": 0.75},  # at momentum 0.25, from a zero start
    "default_momentum": {"torch": 0.1, "paddle": 0.9, "flax": 0.99},
    "running_var_ddof": {"torch": 1, "paddle": 0, "flax": 0},  # on CPU
    "epsilon_argument": {"torch": "eps", "paddle": "epsilon", "flax": "epsilon"},
    "spec_momentum_becomes": {"torch": 0.1, "paddle": 0.9, "flax": 0.9},  # the spec's 0.1, in native terms
    "paddle_cpu_feeds_unbiased": False,
    "eval_changed_by_bn_mistakes": {"paddle": False, "flax": False},
}


def _one_bn_step(framework: str, momentum: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(running mean, running var) of the framework's own BatchNorm after one train step from (0, 1)."""
    if framework == "torch":
        bn = torch.nn.BatchNorm2d(x.shape[1], momentum=momentum).train()
        bn(torch.from_numpy(x))
        return bn.running_mean.numpy(), bn.running_var.numpy()
    if framework == "paddle":
        bn = paddle.nn.BatchNorm2D(x.shape[1], momentum=momentum)
        bn.train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bn(paddle.to_tensor(x))
        return bn._mean.numpy(), bn._variance.numpy()
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    layer = nn.BatchNorm(use_running_average=False, momentum=momentum)
    _, state = layer.apply(layer.init(jax.random.key(0), x_nhwc), x_nhwc, mutable=["batch_stats"])
    return np.asarray(state["batch_stats"]["mean"]), np.asarray(state["batch_stats"]["var"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bn_momentum_meaning(framework: str) -> None:
    x = np.random.default_rng(0).normal(1.0, 1.0, size=(4, 3, 5, 5)).astype(np.float32)
    mean, _ = _one_bn_step(framework, 0.25, x)
    new_weight = CLAIMS["new_batch_weight"][framework]  # running mean starts at 0
    np.testing.assert_allclose(mean, new_weight * x.mean(axis=(0, 2, 3)), rtol=1e-5)


def test_bn_defaults() -> None:
    torch_args = inspect.signature(torch.nn.BatchNorm2d).parameters
    paddle_args = inspect.signature(paddle.nn.BatchNorm2D).parameters
    flax_args = inspect.signature(nn.BatchNorm).parameters
    momentum, eps = CLAIMS["default_momentum"], CLAIMS["epsilon_argument"]
    assert torch_args["momentum"].default == momentum["torch"] and eps["torch"] in torch_args
    assert paddle_args["momentum"].default == momentum["paddle"] and eps["paddle"] in paddle_args
    assert flax_args["momentum"].default == momentum["flax"] and eps["flax"] in flax_args


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_running_stats_match_oracle(framework: str, bench: Bench) -> None:
    assert bench.correct_error(framework, "running_stats") < tolerance(TOLERANCE_KIND["running_stats"])
    # the model's own BN, one train step from a zero mean: torch's momentum weighs the new batch, the others' the old
    x = np.random.default_rng(0).normal(1.0, 1.0, size=(4, 3, 5, 5)).astype(np.float32)
    native = CLAIMS["spec_momentum_becomes"][framework]
    new_weight = native if framework == "torch" else 1 - native
    np.testing.assert_allclose(_model_bn_mean(framework, bench.spec, x), new_weight * x.mean(axis=(0, 2, 3)),
                               rtol=1e-5)


def _model_bn_mean(framework: str, spec: Any, x: np.ndarray) -> np.ndarray:
    """The running mean of this repository's BN (built from `spec`) after one train step on `x`."""
    if framework == "torch":
        from resnet_rosetta.frameworks.torch.model import BatchNorm2d

        bn = BatchNorm2d(x.shape[1], spec).train()
        bn(torch.from_numpy(x))
        return bn.running_mean.detach().numpy()
    if framework == "paddle":
        from resnet_rosetta.frameworks.paddle.model import BatchNorm2D

        layer = BatchNorm2D(x.shape[1], spec)
        layer.train()
        layer(paddle.to_tensor(x))
        return layer._mean.numpy()
    from resnet_rosetta.frameworks.flax.model import BatchNorm

    module, x_nhwc = BatchNorm(spec, use_running_average=False), jnp.asarray(x.transpose(0, 2, 3, 1))
    _, state = module.apply(module.init(jax.random.key(0), x_nhwc), x_nhwc, mutable=["batch_stats"])
    return np.asarray(state["batch_stats"]["mean"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_native_running_var_rule(framework: str) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)  # n = 8 per channel
    only_new = 1.0 if framework == "torch" else 0.0  # running var = the fed batch variance
    _, var = _one_bn_step(framework, only_new, x)
    ddof = CLAIMS["running_var_ddof"][framework]
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3), ddof=ddof), rtol=1e-5)


@pytest.mark.parametrize("framework", ["paddle", "flax"])
def test_bn_mistakes_do_not_show_in_eval(framework: str, bench: Bench) -> None:
    naive = bench.spec.replace(bn_momentum=0.9, bn_running_var="native")  # both mistakes at once
    logits = load(framework).Adapter(naive, bench.weights).forward(bench.x)["logits"]
    changed = compare(logits, bench.eval_reference["logits"], 0).max_rel >= tolerance("eval")
    assert changed == CLAIMS["eval_changed_by_bn_mistakes"][framework]


def _model_bn_running_var(spec_running_var: str, x: np.ndarray) -> np.ndarray:
    """The repository's Paddle BatchNorm2D (momentum 1: running = fed) after one train step on `x`."""
    from resnet_rosetta.frameworks.paddle.model import BatchNorm2D
    from resnet_rosetta.guide.pitfalls import TINY

    bn = BatchNorm2D(x.shape[1], TINY.replace(bn_momentum=1.0, bn_running_var=spec_running_var))
    bn.train()
    bn(paddle.to_tensor(x))
    return bn._variance.numpy()


@pytest.mark.parametrize("native_unbiased", [False, True], ids=["cpu-as-measured", "cpu-claimed-unbiased"])
def test_paddle_correction_follows_the_device(native_unbiased: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model rescales only what the device's measured convention lacks (measured: biased on CPU)."""
    from resnet_rosetta.frameworks.paddle import model as paddle_model

    assert paddle_model.native_running_var_is_unbiased("cpu") is CLAIMS["paddle_cpu_feeds_unbiased"]  # measured
    monkeypatch.setitem(paddle_model._NATIVE_UNBIASED, paddle.get_device(), native_unbiased)
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)  # n = 8
    unbiased, biased = x.var(axis=(0, 2, 3), ddof=1), x.var(axis=(0, 2, 3))
    # had the device fed the unbiased variance, rescaling it again would be the double correction
    np.testing.assert_allclose(_model_bn_running_var("unbiased", x), biased if native_unbiased else unbiased,
                               rtol=1e-5)
    np.testing.assert_allclose(_model_bn_running_var("biased", x),
                               biased * 7 / 8 if native_unbiased else biased, rtol=1e-5)
    np.testing.assert_allclose(_model_bn_running_var("native", x), biased, rtol=1e-5)


@pytest.mark.gpu
def test_paddle_running_var_on_gpu() -> None:
    """On a GPU (cuDNN path), whatever Paddle's native convention, the model feeds what the spec asks."""
    if not paddle.is_compiled_with_cuda():
        pytest.skip("needs Paddle's GPU build")
    from resnet_rosetta.frameworks.paddle import model as paddle_model

    paddle.set_device("gpu")
    try:
        print("Paddle feeds the unbiased variance on GPU:", paddle_model.native_running_var_is_unbiased())
        x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)
        np.testing.assert_allclose(_model_bn_running_var("unbiased", x), x.var(axis=(0, 2, 3), ddof=1), rtol=1e-4)
        np.testing.assert_allclose(_model_bn_running_var("biased", x), x.var(axis=(0, 2, 3)), rtol=1e-4)
    finally:
        paddle.set_device("cpu")
