"""The common surface over the Flax model: canonical weights in and out, forward on NCHW NumPy."""
from __future__ import annotations

import contextlib
import functools
from functools import partial
from typing import Any, Callable, ContextManager, Mapping, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import Weights, relu_sites
from resnet_rosetta.common.precision import host_dtype
from resnet_rosetta.common.spec import STAGE_NAMES, ResNetSpec
from .files import flatten, unflatten
from .model import ResNet

NATIVE_FORMAT = "flax"


DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16, "fp64": jnp.float64}
Method = TypeVar("Method", bound=Callable[..., Any])


def x64_scope(dtype: str) -> ContextManager[Any]:
    """JAX has float64 only with its x64 switch on. It is switched on for an fp64 run and only
    around it (`jax.enable_x64`, a scoped setting that jit keys its cache on), so an fp32 run in
    the same process, before or after, computes exactly as if fp64 had never run."""
    return jax.enable_x64(True) if dtype == "fp64" else contextlib.nullcontext()


def in_x64_scope(method: Method) -> Method:
    """Run a method of an object with a `dtype_name` inside `x64_scope(dtype_name)`."""
    @functools.wraps(method)
    def scoped(self: Any, *args: Any, **kwargs: Any) -> Any:
        with x64_scope(self.dtype_name):
            return method(self, *args, **kwargs)
    return scoped  # type: ignore[return-value]


class Adapter:
    """A Flax ResNet and its variables `{params, batch_stats}` built from canonical weights.

    `dtype` bf16 / fp16 / fp64 stores the variables and feeds the inputs in that dtype; linen
    layers whose `dtype` is unset compute in the dtype of their inputs and parameters, so every
    layer computes in it (JAX reductions accumulate low-precision floats in fp32). fp64 methods
    run inside `x64_scope`.
    """

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu",
                 dtype: str = "fp32") -> None:
        self.spec = spec
        self.dtype_name, self.dtype, self.host = dtype, DTYPES[dtype], host_dtype(dtype)
        kind = "gpu" if device.startswith("gpu") or device.startswith("cuda") else "cpu"
        self.device = jax.local_devices(backend=kind)[0]  # this process's own (in a multi-process run too)
        self.model = self.build_model()
        self.load(weights)

    def build_model(self) -> nn.Module:
        return ResNet(self.spec)

    def apply_logits(self, variables: dict[str, Any], x: jnp.ndarray, **options: Any) -> tuple[jnp.ndarray, Any]:
        """(logits, mutated collections) of `model.apply(variables, x, **options)` in train mode, the
        trainers' forward (a user's model returns its logits alone, parity --model)."""
        (logits, _), state = self.model.apply(variables, x, **options)
        return logits, state

    @in_x64_scope
    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        native = rules.to_native(weights, self.spec, NATIVE_FORMAT)
        self.variables: dict[str, Any] = jax.device_put(jax.tree.map(self._array, unflatten(native)), self.device)

    @in_x64_scope
    def canonical_weights(self) -> Weights:
        native = {k: np.asarray(v, dtype=self.host) for k, v in flatten(self.variables).items()}
        return rules.from_native(native, self.spec, NATIVE_FORMAT, "flax model")

    def _array(self, a: np.ndarray) -> jnp.ndarray:
        return jnp.asarray(a, dtype=self.dtype)

    @partial(jax.jit, static_argnums=(0, 3))
    def _apply(self, variables: dict[str, Any], x: jnp.ndarray, train: bool,
               feed: dict[str, jnp.ndarray] | None = None) -> Any:
        with nn.intercept_methods(_feeder(self.spec, feed)):
            if train:
                return self.model.apply(variables, x, train=True, mutable=["batch_stats"])
            return self.model.apply(variables, x, train=False), {}

    @in_x64_scope
    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs as NCHW NumPy; train=True uses batch statistics and updates them.

        With `feed` (stage name -> NCHW array), every stage's input is replaced by the fed output
        of the stage before it (`nn.intercept_methods`), so each stage is measured on its own.
        """
        nhwc = None if feed is None else {k: jax.device_put(self._array(_to_nhwc(v)), self.device)
                                          for k, v in feed.items()}
        (_, stages), updates = self._apply(self.variables, jax.device_put(self._array(_to_nhwc(x)), self.device),
                                           train, nhwc)
        if train:
            self.variables = {**self.variables, **updates}
        return {k: _to_nchw(np.asarray(stages[k], dtype=self.host)) for k in STAGE_NAMES if k in stages}  # jax sorts keys


def _feeder(spec: ResNetSpec, feed: Mapping[str, jnp.ndarray] | None) -> Any:
    """An interceptor that swaps the input of each stage's first block (and of `fc`) for `feed`."""
    targets = {} if feed is None else {
        "fc": feed["pooled"],
        **{f"layer{k}_0": feed["stem" if k == 1 else f"layer{k - 1}"] for k in range(1, len(spec.depths) + 1)}}

    def intercept(next_fun: Any, args: tuple, kwargs: dict, context: Any) -> Any:
        if context.method_name == "__call__" and context.module.name in targets:
            args = (targets[context.module.name],) + tuple(args[1:])
        return next_fun(*args, **kwargs)
    return intercept


def _gate_paths(spec: ResNetSpec) -> dict[tuple[str, ...], str]:
    """Native module path -> ReLU site (`canonical.relu_sites`), through the rule table."""
    return {tuple(rules.native_module(site, NATIVE_FORMAT, spec).split("/")): site for site in relu_sites(spec)}


def gate_filter(spec: ResNetSpec) -> Any:
    """For `apply(capture_intermediates=...)`: keep the outputs of the modules feeding a ReLU (a
    BatchNorm, or a whole block, whose output is the ReLU's)."""
    paths = _gate_paths(spec)
    return lambda module, method: method == "__call__" and module.path in paths


def gates_of(spec: ResNetSpec, intermediates: Any) -> dict[str, jnp.ndarray]:
    """Per ReLU site, the bool mask `input > 0` (NHWC) from the captured intermediates."""
    flat = traverse_util.flatten_dict(intermediates)
    return {site: flat[path + ("__call__",)][0] > 0 for path, site in _gate_paths(spec).items()}


def gates_to_nchw(gates: Mapping[str, jnp.ndarray]) -> dict[str, np.ndarray]:
    return {site: _to_nchw(np.asarray(g)) for site, g in gates.items()}


def _to_nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1))) if a.ndim == 4 else a


def _to_nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 else a


def parity_numerics(seed: int = 0) -> dict[str, object]:
    """Full-precision matmuls and convolutions (no TF32 / bf16 passes); returns what was set."""
    jax.config.update("jax_default_matmul_precision", "highest")
    return {"jax_default_matmul_precision": "highest", "seed": seed, "version": jax.__version__,
            "default_backend": jax.default_backend()}
