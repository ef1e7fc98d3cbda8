"""The common surface over the Flax model: canonical weights in and out, forward on NCHW NumPy."""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ...common import rules
from ...common.canonical import Weights
from ...common.spec import STAGE_NAMES, ResNetSpec
from .files import flatten, unflatten
from .model import ResNet

NATIVE_FORMAT = "flax"


class Adapter:
    """A Flax ResNet and its variables `{params, batch_stats}` built from canonical weights."""

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu") -> None:
        self.spec = spec
        self.device = jax.devices("gpu" if device.startswith("gpu") or device.startswith("cuda") else "cpu")[0]
        self.model = ResNet(spec)
        self.load(weights)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        native = rules.to_native(weights, self.spec, NATIVE_FORMAT)
        self.variables: dict[str, Any] = jax.device_put(unflatten(native), self.device)

    def canonical_weights(self) -> Weights:
        return rules.from_native(flatten(self.variables), self.spec, NATIVE_FORMAT, "flax model")

    @partial(jax.jit, static_argnums=(0, 3))
    def _apply(self, variables: dict[str, Any], x: jnp.ndarray, train: bool) -> Any:
        if train:
            return self.model.apply(variables, x, train=True, mutable=["batch_stats"])
        return self.model.apply(variables, x, train=False), {}

    def forward(self, x: np.ndarray, train: bool = False) -> dict[str, np.ndarray]:
        """Named stage outputs as NCHW NumPy; train=True uses batch statistics and updates them."""
        x_nhwc = jax.device_put(np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))), self.device)
        (_, stages), updates = self._apply(self.variables, x_nhwc, train)
        if train:
            self.variables = {**self.variables, **updates}
        return {k: _to_nchw(np.asarray(stages[k])) for k in STAGE_NAMES}  # jax sorts dict keys


def _to_nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 else a


def parity_numerics(seed: int = 0) -> dict[str, object]:
    """Full-precision matmuls and convolutions (no TF32 / bf16 passes); returns what was set."""
    jax.config.update("jax_default_matmul_precision", "highest")
    return {"jax_default_matmul_precision": "highest", "seed": seed, "version": jax.__version__,
            "backend": jax.default_backend()}
