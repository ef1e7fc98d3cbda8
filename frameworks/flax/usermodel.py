"""A ResNet someone wrote in Flax linen (parity --model flax=module:factory), under the adapter's surface.

The factory returns an unbound `flax.linen.Module` whose `__call__(x, train)` takes an NHWC batch
and returns the logits, with batch norm as `nn.BatchNorm(use_running_average=not train)`; parity
applies it as `model.apply({"params", "batch_stats"}, x, train=..., mutable=["batch_stats"])` in
train mode (the updated running statistics come back as the mutated collection). Its variable tree,
flattened to "/" paths, must carry this suite's names (`rules._flax_module`: conv1, bn1,
layer{s}_{i}/conv1 .. downsample_bn, fc; kernel, scale, bias, mean, var), read off
`jax.eval_shape` of its `init` on a 32 x 32 x 3 batch. Named stage outputs are read by a method
interceptor at the modules `rules.stage_taps` names. In fp64 a BatchNorm whose epsilon and momentum
equal the run's once rounded as the run rounds them takes the run's exact values, as our ports do.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from resnet_rosetta.common import rules
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.precision import run_bn_constants
from resnet_rosetta.common.spec import ResNetSpec
from .adapter import Adapter, _feeder

INIT_SHAPE = (1, 32, 32, 3)  # the batch `native_shapes` initialises a user's model on (shapes only)


def native_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Flattened variable path -> shape, from the model's `init` traced abstractly (no compute)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a flax.linen.Module, found {type(model).__name__}")
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(INIT_SHAPE), train=False))
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(dict(shapes), sep="/").items()}


class UserAdapter(Adapter):
    """The adapter's surface over a linen module built by `make()` with this suite's variable names."""

    def __init__(self, make: Callable[[], nn.Module], fmt: str, spec: ResNetSpec,
                 weights: Mapping[str, np.ndarray], device: str = "cpu", dtype: str = "fp32") -> None:
        self.make = make
        super().__init__(spec, weights, device, dtype)

    def build_model(self) -> nn.Module:
        return self.make()

    def _constants(self) -> Any:
        """fp64: the run's exact BN constants where the model's round to them (see the module doc)."""
        spec = self.spec

        def intercept(next_fun: Any, args: tuple, kwargs: dict, context: Any) -> Any:
            m = context.module
            if self.dtype_name == "fp64" and isinstance(m, nn.BatchNorm):
                eps, momentum = run_bn_constants(spec, m.epsilon, 1 - m.momentum)  # Flax's momentum: 1 - torch's
                if eps is not None:
                    object.__setattr__(m, "epsilon", eps)
                if momentum is not None:
                    object.__setattr__(m, "momentum", 1 - momentum)
            return next_fun(*args, **kwargs)
        return intercept

    def apply_logits(self, variables: dict[str, Any], x: jnp.ndarray, **options: Any) -> tuple[jnp.ndarray, Any]:
        with nn.intercept_methods(self._constants()):
            return self.model.apply(variables, x, **options)

    @partial(jax.jit, static_argnums=(0, 3))
    def _apply(self, variables: dict[str, Any], x: jnp.ndarray, train: bool,
               feed: dict[str, jnp.ndarray] | None = None) -> Any:
        """((logits, named stage outputs), mutated batch_stats) from the user's module."""
        taps: dict[tuple[str, ...], list[tuple[str, str]]] = {}  # a one-block stage's block has two
        for stage, (side, name) in rules.stage_taps(self.spec, "flax").items():
            taps.setdefault(tuple(name.split("/")), []).append((stage, side))
        stages: dict[str, jnp.ndarray] = {}

        def tap(next_fun: Any, args: tuple, kwargs: dict, context: Any) -> Any:
            here = taps.get(tuple(context.module.path), []) if context.method_name == "__call__" else []
            stages.update({stage: args[0] for stage, side in here if side == "input"})
            out = next_fun(*args, **kwargs)
            stages.update({stage: out for stage, side in here if side == "output"})
            return out
        with nn.intercept_methods(tap), nn.intercept_methods(_feeder(self.spec, feed)):
            if train:
                logits, updates = self.apply_logits(variables, x, train=True, mutable=["batch_stats"])
            else:
                logits, updates = self.apply_logits(variables, x, train=False), {}
        unseen = [f"{stage} ({side} of {name})" for stage, (side, name) in rules.stage_taps(self.spec, "flax").items()
                  if stage not in stages]
        if unseen:
            raise UserError(f"flax model: no module called where these stage outputs are read: {', '.join(unseen)}")
        stages["pooled"] = stages["pooled"].reshape(stages["pooled"].shape[0], -1)
        return (logits, {**stages, "logits": logits}), updates

