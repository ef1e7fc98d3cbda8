"""Flax side of the guide's demonstrations; mirrored in frameworks/torch/demos.py and frameworks/paddle/demos.py.

The functions above the line are shown in the guide (`resnet-rosetta explain`) and run by
tests/guide/; the ones below it feed `explain --measure` and the pitfall tests.
"""
from __future__ import annotations

import contextlib
import os
from functools import partial
from typing import Any, Callable, Iterator
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from resnet_rosetta.common.canonical import Weights
from resnet_rosetta.common.spec import ResNetSpec
from . import model as flax_model
from .adapter import Adapter
from .model import ResNet


def compile_model(model: nn.Module) -> Callable[..., Any]:
    """Traces `apply` to a jaxpr on the first call per input shape and dtype, then XLA compiles it."""
    return jax.jit(partial(model.apply, train=False))


def bf16_logits(model: nn.Module, variables: Any, x: jax.Array) -> jax.Array:
    """No autocast: the compute dtype follows the arrays (or a module's `dtype=`), so cast them."""
    to_bf16 = partial(jnp.asarray, dtype=jnp.bfloat16)
    logits, _ = model.apply(jax.tree.map(to_bf16, variables), to_bf16(x))
    return logits


def full_fp32_precision() -> None:
    """fp32 dots and convolutions at full precision; the default (None) lets XLA use TF32 on Ampere+ GPUs."""
    jax.config.update("jax_default_matmul_precision", "highest")


def inference_logits(model: nn.Module, variables: Any, x: jax.Array) -> jax.Array:
    """Nothing to switch off: no graph is recorded outside `jax.grad`; a forward is a function call."""
    logits, _ = model.apply(variables, x)
    return logits


def frozen_features(features: jax.Array) -> jax.Array:
    """stop_gradient: the same values, a constant for `jax.grad` (identity forward, zero backward)."""
    return jax.lax.stop_gradient(features)


def dropout_features(x: jax.Array, rate: float, train: bool, key: jax.Array | None = None) -> jax.Array:
    """nn.Dropout takes its mask from the 'dropout' key passed to apply, scales kept values by 1/(1-rate);
    `deterministic=True` makes it the identity (batch norm has its own switch, `use_running_average`)."""
    rngs = {} if key is None else {"dropout": key}
    return nn.Dropout(rate, deterministic=not train).apply({}, x, rngs=rngs)


def seeded_model(spec: ResNetSpec, seed: int) -> Any:
    """Initialisation is a pure function of an explicit key (and returns the variables): nothing global to seed."""
    x = jnp.zeros((1, spec.input_size, spec.input_size, spec.in_channels), jnp.float32)
    return ResNet(spec).init(jax.random.key(seed), x)


def deterministic_kernels() -> None:
    """XLA reads XLA_FLAGS when its GPU backend starts: call this before the first JAX computation."""
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()


@contextlib.contextmanager
def same_padding_everywhere() -> Iterator[None]:
    """The naive port: our model with padding='SAME' on every conv and max-pool, as the Flax ImageNet example."""

    class SameLinen:  # flax.linen, except for the padding
        def __getattr__(self, name: str) -> Any:
            return getattr(nn, name)

        @staticmethod
        def Conv(*args: Any, **kwargs: Any) -> nn.Conv:  # noqa: N802 (mirrors nn.Conv)
            return nn.Conv(*args, **{**kwargs, "padding": "SAME"})

        @staticmethod
        def max_pool(x: jax.Array, window_shape: tuple[int, ...], strides: tuple[int, ...], padding: Any) -> jax.Array:
            return nn.max_pool(x, window_shape, strides, "SAME")

    with mock.patch.object(flax_model, "nn", SameLinen()):
        yield


# ---------------------------------------------------------------- measurement glue

def forward_calls(spec: ResNetSpec, weights: Weights, x: np.ndarray) -> tuple[Callable[[], object], ...]:
    """(eager call, compiled call) of one inference forward on `x`."""
    adapter = Adapter(spec, weights)
    compiled = compile_model(adapter.model)
    x_nhwc = jnp.asarray(np.transpose(x, (0, 2, 3, 1)))

    def eager() -> object:
        return np.asarray(adapter.model.apply(adapter.variables, x_nhwc)[0])

    def jitted() -> object:
        return np.asarray(compiled(adapter.variables, x_nhwc)[0])

    return eager, jitted


def bf16_run(spec: ResNetSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """Logits of `bf16_logits` (jitted: one XLA program instead of one per op) as float32 NumPy."""
    adapter = Adapter(spec, weights)
    logits = jax.jit(bf16_logits, static_argnums=0)(adapter.model, adapter.variables,
                                                    jnp.asarray(np.transpose(x, (0, 2, 3, 1))))
    return np.asarray(logits, dtype=np.float32)
