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
- GPU: TF32 is `jax_default_matmul_precision` (None: XLA's default, TF32; "highest" under `--tf32
  off`), read back into every row; memory of a compiled step from XLA's `memory_analysis()` (what
  the step needs, not the preallocated pool); the pool fraction set here (`MEM_FRACTION_ENV`).
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
from resnet_rosetta.common.workload import MatmulMaker, Workload, WorkloadConfig, apply_tf32_policy, has_tf32
from . import parallel
from .model import ResNet
from .reference import MODELS

CUDA_PLUGINS = ("jax-cuda13-plugin", "jax-cuda12-plugin")  # the `gpu` extra installs the first

# XLA's GPU client preallocates 75% of the device by default; read when the GPU backend starts, so
# set at import (before any device query). 0.9 leaves room for large batches; recorded in every row.
MEM_FRACTION_ENV = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.90"}
for _k, _v in MEM_FRACTION_ENV.items():
    os.environ.setdefault(_k, _v)
# jax_default_matmul_precision values that keep fp32 products exact (no TF32 / bf16 passes)
STRICT_PRECISIONS = ("highest", "float32")


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

def tf32_state() -> dict:
    """TF32 as JAX reports it: fp32 dots and convolutions use TF32 on a GPU unless the default
    matmul precision is "highest" / "float32" (XLA's default, None, is TF32 on Ampere+); "hardware":
    whether GPU 0 has TF32 at all (compute capability >= 8.0; None without a GPU)."""
    value = jax.config.jax_default_matmul_precision
    on = str(value).lower() not in STRICT_PRECISIONS
    return {"matmul": on, "conv": on, "hardware": has_tf32(_capability()), "read": f"jax_default_matmul_precision={value!r}"}


def _capability() -> tuple[int, int] | None:
    """GPU 0's compute capability as jaxlib reports it ("8.0"), None without a GPU."""
    if not gpu_count():
        return None
    major, _, minor = str(jax.devices("gpu")[0].compute_capability).partition(".")
    return int(major), int(minor or 0)


def set_tf32(on: bool) -> None:
    """TF32 on (XLA's default) or off ("highest") for every dot and convolution."""
    jax.config.update("jax_default_matmul_precision", None if on else "highest")


def _memory_env() -> dict:
    return {k: os.environ.get(k) for k in ("XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE",
                                           "XLA_PYTHON_CLIENT_ALLOCATOR")}


def _cuda_versions(dev) -> dict:
    """CUDA and cuDNN as jaxlib reports them (private helpers, absent on CPU builds)."""
    platform = getattr(dev.client, "platform_version", None)  # e.g. "PJRT C API\ncuda 12080": one line
    out = {"platform_version": " ".join(str(platform).split()) if platform else None}
    try:
        from jax._src.lib import cuda_versions  # noqa: PLC0415 - present only in CUDA jaxlib builds
        out.update(cuda=cuda_versions.cuda_runtime_get_version(), cudnn=cuda_versions.cudnn_get_version())
    except (ImportError, AttributeError):
        pass
    return out


def info(device: str) -> dict:
    import flax
    d = {"framework_version": flax.__version__, "jax_version": jax.__version__,
         "jaxlib_version": _jaxlib_version(), "optax_version": optax.__version__}
    if device == "gpu" and gpu_count():
        dev = jax.devices("gpu")[0]
        apply_tf32_policy(set_tf32)
        d.update(device_name=dev.device_kind, tf32=tf32_state(), jax_memory=_memory_env(),
                 tf32_override=os.environ.get("NVIDIA_TF32_OVERRIDE"), **_cuda_versions(dev))
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


def xla_step_bytes(stats: Any) -> int | None:
    """Device bytes one compiled step needs, from XLA's CompiledMemoryStats: arguments + outputs +
    temporaries, less the buffers outputs alias (donated state); None when XLA gives no analysis."""
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes)


def _peak_memory_for(dev, jitted=None, args: tuple = ()):
    """peak(): on a GPU the compiled step's XLA memory analysis (computed after the timing: it
    compiles once more), op-by-op the device's peak in use (XLA cannot reset it); on CPU peak RSS."""
    if dev.platform != "gpu":
        return lambda: {"peak_memory_bytes": peak_rss_bytes(), "memory_kind": "process peak RSS"}
    if jitted is not None:
        def analysed() -> dict:
            stats = jitted.lower(*args).compile().memory_analysis()
            return {"peak_memory_bytes": xla_step_bytes(stats),
                    "memory_kind": "device (XLA memory analysis of the compiled step)"}
        return analysed

    def peak() -> dict:
        stats = dev.memory_stats() or {}
        return {"peak_memory_bytes": stats.get("peak_bytes_in_use"),
                "memory_kind": "device (peak in use since the process started)"}
    return peak


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
    batch = cell.batch * cell.devices  # the global batch: `cell.batch` per device
    x = jax.device_put(jax.random.normal(kx, (batch, cell.size, cell.size, spec.in_channels)), dev)
    y = jax.device_put(jax.random.randint(ky, (batch,), 0, spec.num_classes), dev)
    variables = jax.device_put(_init_variables(module, x[:1]), dev)
    compiled = cell.execution == "compiled"
    if dev.platform == "gpu":
        apply_tf32_policy(set_tf32)
        settings.update(tf32=tf32_state(), jax_memory=_memory_env())

    if cell.mode == "infer":
        def forward(v, inputs):
            return apply(v, inputs, False)[0]
        fn = jax.jit(forward) if compiled else forward

        def step() -> Any:
            return fn(variables, x)
        return Workload(step=step, sync=_sync, settings=settings,
                        peak_memory=_peak_memory_for(dev, fn if compiled else None, (variables, x)))

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

    if cell.devices > 1:  # `bench --devices N`: one jit over a Mesh of N devices, the batch sharded
        if not compiled:
            raise Unsupported("bench --devices > 1 measures JAX under jit (--exec compiled) only")
        x, y, state, fn = parallel.bench_shard(train_step, state, x, y, dev.platform, cell.devices)
        settings.update(donate_train_state=True, data_parallel={
            "engine": "jax.jit over a Mesh, batch NamedSharding P('data'), the rest replicated",
            "batch_norm": "global (XLA partitions the reductions over the whole batch)"})
    elif compiled:
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

    # the analysis lowers with the current state's shapes only (donation needs no live buffers)
    analysed = ((jax.jit(train_step, donate_argnums=0), (jax.eval_shape(lambda: state), x, y))
                if compiled and cell.devices == 1 else (None, ()))
    return Workload(step=step, sync=sync, peak_memory=_peak_memory_for(dev, *analysed), settings=settings)


def matmul_maker(device: str, mode: str) -> MatmulMaker:
    """make(n) -> f; f(reps) runs reps n x n x n matmuls in math mode `mode` and waits once, for
    the last (one stream: the last done means all done). fp32 and tf32 set the precision
    explicitly: "highest", and "default" (XLA's TF32 on Ampere+, what fp32 cells run in)."""
    dev = _device(device)
    dtype = {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}[mode]
    precision = {"fp32": "highest", "tf32": "default"}.get(mode)
    if precision:
        jax.config.update("jax_default_matmul_precision", precision)
    mm = jax.jit(jnp.matmul)

    def make(n: int):
        k1, k2 = jax.random.split(jax.random.PRNGKey(n))
        a = jax.device_put(jax.random.normal(k1, (n, n)).astype(dtype), dev)
        b = jax.device_put(jax.random.normal(k2, (n, n)).astype(dtype), dev)

        def f(reps: int) -> None:
            out = None
            for _ in range(reps):
                out = mm(a, b)
            out.block_until_ready()
        return f
    return make
