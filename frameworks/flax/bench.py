"""JAX / Flax benchmark runner: our `model.ResNet` or the plain Flax `reference.py`, at its best
(the contract: common/workload.py).

- eager: the model applied without `jax.jit`: JAX dispatches op by op (each primitive compiled once
  and cached). Nobody trains Flax this way; it is measured because it is the like-for-like of the
  other frameworks' eager mode.
- compiled: `jax.jit`; the training step donates its train state (`donate_argnums=0`), so
  parameters, batch statistics and momentum are updated in place.
- bf16: compute dtype bfloat16, parameters kept float32. The reference module takes
  `dtype=jnp.bfloat16` (the Flax idiom); our spec-built module has no dtype field, so its
  variables and input are cast to bfloat16 inside the step (gradients flow back to the fp32
  master weights through the cast).
- train step: forward (train=True, batch_stats mutable), softmax cross-entropy, grad,
  optax.sgd(momentum=0.9).
- sync: `jax.block_until_ready` on every output of the timed steps.
Imports jax, flax and optax only.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from resnet_rosetta.common.errors import Unsupported, first_line
from resnet_rosetta.common.host import peak_rss_bytes
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.workload import MatmulMaker, Workload, WorkloadConfig
from .model import ResNet
from .reference import MODELS

CUDA_PLUGINS = ("jax-cuda13-plugin", "jax-cuda12-plugin")  # the `gpu` extra installs the first


def _device(device: str):
    if device == "gpu":
        try:
            devs = jax.devices("gpu")
        except RuntimeError:
            devs = []
        if not devs:
            raise Unsupported("jax sees no GPU (jaxlib without CUDA, or no device)")
        return devs[0]
    return jax.devices("cpu")[0]


def setup_threads(threads: int) -> None:
    """XLA sizes its CPU thread pool from the process affinity mask (set by the cell driver)."""


def gpu_count() -> int:
    try:
        return len(jax.devices("gpu"))
    except RuntimeError:
        return 0


def gpu_sight() -> dict:
    """What JAX sees of CUDA (frameworks/devices.py): GPU count, its CUDA plugin (`jax[cuda13]`; none:
    a CPU-only install), and JAX's own reason when the plugin cannot start its backend."""
    from importlib import metadata
    plugins = []
    for dist in CUDA_PLUGINS:
        try:
            plugins.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    build = ", ".join(plugins) or None
    try:
        devs = jax.devices("gpu")
        return {"count": len(devs), "build": build or "CUDA jaxlib", "name": devs[0].device_kind if devs else ""}
    except RuntimeError as exc:
        return {"count": 0, "build": build, "error": first_line(exc) if build else ""}


def info(device: str) -> dict:
    import flax
    d = {"framework_version": flax.__version__, "jax_version": jax.__version__,
         "jaxlib_version": _jaxlib_version(), "optax_version": optax.__version__}
    if device == "gpu" and gpu_count():
        dev = jax.devices("gpu")[0]
        d.update(device_name=dev.device_kind,
                 tf32="off (NVIDIA_TF32_OVERRIDE=0)" if os.environ.get("NVIDIA_TF32_OVERRIDE") == "0" else
                 f"jax_default_matmul_precision={jax.config.jax_default_matmul_precision!r} "
                 "(None: TF32 on Ampere+ for fp32 matmul/conv)")
    else:
        d["device_name"] = "cpu"
    return d


def _jaxlib_version() -> str | None:
    try:
        import jaxlib
        return jaxlib.__version__
    except (ImportError, AttributeError):
        return None


def _sync(handles: Sequence[Any]) -> None:
    if handles:
        jax.block_until_ready(list(handles))


def _peak_memory_for(dev):
    if dev.platform == "gpu":
        def peak() -> dict:
            stats = dev.memory_stats() or {}
            return {"peak_memory_bytes": stats.get("peak_bytes_in_use"), "memory_kind": "device (peak in use)"}
        return peak
    return lambda: {"peak_memory_bytes": peak_rss_bytes(), "memory_kind": "process peak RSS"}


def _cast(tree: Any, dtype) -> Any:
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _model_and_apply(cell: WorkloadConfig):
    """(module, apply(variables, x, train) -> (logits, new_batch_stats or None))."""
    spec = get_spec(cell.arch)
    bf16 = cell.precision == "bf16"
    if cell.impl == "reference":
        if cell.arch not in MODELS:
            raise Unsupported(f"the plain Flax reference has no {cell.arch}")
        module = MODELS[cell.arch](num_classes=spec.num_classes, dtype=jnp.bfloat16 if bf16 else jnp.float32)

        def apply(variables, x, train):
            if train:
                logits, upd = module.apply(variables, x, train=True, mutable=["batch_stats"])
                return logits, upd["batch_stats"]
            return module.apply(variables, x, train=False), None
        return module, apply

    module = ResNet(spec)

    def apply(variables, x, train):
        if bf16:
            variables, x = _cast(variables, jnp.bfloat16), x.astype(jnp.bfloat16)
        if train:
            (logits, _), upd = module.apply(variables, x, train=True, mutable=["batch_stats"])
            return logits, _cast(upd["batch_stats"], jnp.float32)
        return module.apply(variables, x, train=False)[0], None
    return module, apply


def _init_variables(module, x) -> dict:
    """He-normal kernels, unit BN scale / variance, on the host: no init graph to compile.

    `module.init` costs an XLA compilation per cell (its cost: docs/benchmarks.md); only the
    shapes come from Flax (`jax.eval_shape`), the values from NumPy. Values stay O(1), so no
    denormals slow the measured steps.
    """
    import numpy as np
    from flax import traverse_util

    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, train=False))
    rng = np.random.default_rng(0)
    flat = {}
    for path, leaf in traverse_util.flatten_dict(shapes).items():
        name, shape = path[-1], tuple(leaf.shape)
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif name in ("scale", "var"):
            value = np.ones(shape, np.float32)
        else:  # bias, mean
            value = np.zeros(shape, np.float32)
        flat[path] = value
    return traverse_util.unflatten_dict(flat)


def build(cell: WorkloadConfig) -> Workload:
    dev = _device(cell.device)
    spec = get_spec(cell.arch)
    settings: dict = {"compute_dtype": "bfloat16" if cell.precision == "bf16" else "float32"}
    module, apply = _model_and_apply(cell)
    kx, ky = jax.random.split(jax.random.PRNGKey(0), 2)
    x = jax.device_put(jax.random.normal(kx, (cell.batch, cell.size, cell.size, spec.in_channels)), dev)
    y = jax.device_put(jax.random.randint(ky, (cell.batch,), 0, spec.num_classes), dev)
    variables = jax.device_put(_init_variables(module, x[:1]), dev)
    peak_memory = _peak_memory_for(dev)
    compiled = cell.execution == "compiled"

    if cell.mode == "infer":
        def forward(v, inputs):
            return apply(v, inputs, False)[0]
        fn = jax.jit(forward) if compiled else forward

        def step() -> Any:
            return fn(variables, x)
        return Workload(step=step, sync=_sync, peak_memory=peak_memory, settings=settings)

    tx = optax.sgd(0.01, momentum=0.9)
    params = variables["params"]
    state = {"params": params, "batch_stats": variables["batch_stats"], "opt": tx.init(params)}

    def train_step(st, inputs, labels):
        def loss_fn(p):
            logits, new_stats = apply({"params": p, "batch_stats": st["batch_stats"]}, inputs, True)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
            return loss, new_stats
        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(st["params"])
        updates, opt_state = tx.update(grads, st["opt"], st["params"])
        return {"params": optax.apply_updates(st["params"], updates), "batch_stats": new_stats,
                "opt": opt_state}, loss

    if compiled:
        fn = jax.jit(train_step, donate_argnums=0)
        settings["donate_train_state"] = True
    else:
        fn = train_step
    holder = {"state": state}

    def step() -> Any:
        holder["state"], loss = fn(holder["state"], x, y)
        return loss

    def sync(handles: Sequence[Any]) -> None:
        jax.block_until_ready([*handles, holder["state"]])

    return Workload(step=step, sync=sync, peak_memory=peak_memory, settings=settings)


def matmul_maker(device: str, precision: str) -> MatmulMaker:
    """make(n): a function running one synchronised n x n x n matmul in `precision`."""
    dev = _device(device)
    dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[precision]
    mm = jax.jit(jnp.matmul)

    def make(n: int):
        k1, k2 = jax.random.split(jax.random.PRNGKey(n))
        a = jax.device_put(jax.random.normal(k1, (n, n)).astype(dtype), dev)
        b = jax.device_put(jax.random.normal(k2, (n, n)).astype(dtype), dev)

        def f() -> None:
            mm(a, b).block_until_ready()
        return f
    return make
