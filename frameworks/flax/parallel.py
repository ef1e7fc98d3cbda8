"""Data parallel in JAX: one process, N devices in a `Mesh` (on CPU, N host devices: XLA_FLAGS
--xla_force_host_platform_device_count=N, set by the caller before JAX starts), two variants:

- `flax`: the ordinary jitted step (training.py) with the batch sharded over the mesh
  (`NamedSharding`, P("data")) and everything else replicated: XLA partitions the whole step, so
  batch norm sees the GLOBAL batch (sync batch norm for free) and gradients are exact;
- `flax/shard_map`: the same loss under `jax.shard_map`, each device normalising its own shard;
  the gradient is that of the replicas' mean loss and the updated running statistics are averaged
  with `lax.pmean` (what Flax's ImageNet example does with its batch statistics).
Replicas are devices of one process, so a fault takes down all of them at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from resnet_rosetta.common.replicas import ReplicaCase, buffers_of, mark_progress, replica, save_rank, step_state
from .adapter import gates_to_nchw
from .training import Trainer

AXIS = "data"


def run(case_file: str, folder: str, timeout: float) -> list[dict[str, object]]:
    """Train the dp case on N host devices, once per variant (`timeout` is the job's own limit:
    the replicas are devices of this process, nothing here waits on another process)."""
    case = ReplicaCase.load(Path(case_file))
    devices = jax.devices("cpu")
    if len(devices) < case.replicas:
        raise RuntimeError(f"JAX sees {len(devices)} CPU device(s), {case.replicas} needed: XLA_FLAGS must set "
                           f"--xla_force_host_platform_device_count={case.replicas} before JAX starts")
    mesh = Mesh(np.array(devices[:case.replicas]), (AXIS,))
    common = {"framework": "flax", "backend": "XLA CPU collectives (one process)", "replicas": case.replicas,
              "launcher": f"one process, {case.replicas} host devices (--xla_force_host_platform_device_count)"}
    infos = []
    for variant, engine, bn, rule, sync in (
            ("flax", "jax.jit over a Mesh, batch NamedSharding P('data'), the rest replicated", "sync", "global",
             {"status": "available", "reason": "XLA partitions the batch-norm reductions over the whole batch"}),
            ("flax/shard_map", "jax.shard_map over a Mesh, gradient of the lax.pmean'd loss, statistics pmean'd",
             "local", "replica_mean", {"status": "not used", "reason": "nn.BatchNorm(axis_name='data') would "
                                                                      "synchronise; this variant keeps per-replica"})):
        _train(case, mesh, Path(folder) / variant.replace("/", "-"), variant == "flax/shard_map")
        infos.append({"variant": variant, "engine": engine, "batch_norm": bn, "running_stats_rule": rule, **common,
                      "sync_batch_norm": sync})
    return infos


def _train(case: ReplicaCase, mesh: Mesh, out: Path, per_replica: bool) -> None:
    trainer = Trainer(case.spec, case.weights, lr=case.lr, momentum=case.momentum, weight_decay=case.weight_decay,
                      record_gates=True)
    every, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    step = _local_step(trainer, mesh) if per_replica else jax.jit(
        trainer.step_fn, out_shardings=(every, every, every, every, split))
    state = jax.device_put((trainer.params, trainer.batch_stats, trainer.opt_state), every)
    ranks: list[dict[str, np.ndarray]] = [{} for _ in range(case.replicas)]
    with replica(out, 0):
        for k, (bx, by) in enumerate(case.batches, start=1):
            x = jax.device_put(np.ascontiguousarray(np.transpose(bx, (0, 2, 3, 1)), np.float32), split)
            loss, params, stats, opt, gates = step(*state, x, jax.device_put(np.asarray(by, np.int32), split))
            state = (params, stats, opt)
            trainer.params, trainer.batch_stats, trainer.opt_state = state
            losses, nchw = np.broadcast_to(np.asarray(loss, np.float64), (case.replicas,)), gates_to_nchw(gates)
            for r, found in enumerate(ranks):
                mark_progress(out, r, k)
                found[f"loss/{k}"] = losses[r:r + 1].copy()
                found.update({f"gates/{k}/{site}": case.shard(g, r) for site, g in nchw.items()})
            ranks[0].update(step_state(k, trainer.canonical_weights(), trainer.optimizer_state()))
        for r, found in enumerate(ranks):  # each device's own copy of the running statistics
            trainer.batch_stats = jax.tree.map(lambda a: _on_device(a, mesh.devices[r]), state[1])
            found.update(buffers_of(trainer.canonical_weights()))
            save_rank(out, r, found)


def _local_step(trainer: Trainer, mesh: Mesh) -> Any:
    """One SGD step per shard: the gradient of the replicas' mean loss (JAX's varying-axes typing
    sums the gradient of the replicated parameters over the mesh, so a `pmean` of per-shard
    gradients would double them: measured), the updated statistics pmean'd."""
    def mean_loss(params: Any, batch_stats: Any, x: jnp.ndarray, y: jnp.ndarray) -> tuple[jnp.ndarray, Any]:
        loss, aux = trainer.loss_fn(params, batch_stats, x, y)
        return jax.lax.pmean(loss, AXIS), (loss, aux)
    grad_fn = jax.value_and_grad(mean_loss, has_aux=True)

    def step(params: Any, batch_stats: Any, opt_state: Any, x: jnp.ndarray, y: jnp.ndarray) -> tuple:
        (_, (loss, (batch_stats, gates))), grads = grad_fn(params, batch_stats, x, y)
        updates, opt_state = trainer.tx.update(grads, opt_state, params)
        return (loss[None], optax.apply_updates(params, updates), jax.lax.pmean(batch_stats, AXIS), opt_state,
                gates)
    return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(), P(), P(AXIS), P(AXIS)),
                                 out_specs=(P(AXIS), P(), P(), P(), P(AXIS))))


def _on_device(a: jax.Array, device: Any) -> np.ndarray:
    return np.asarray(next(s.data for s in a.addressable_shards if s.device == device))


# `bench --devices N` (benchmarks/dp.py): the same engine timing the benchmark's training step.

def launch_bench(target: Callable[..., None], args: tuple, replicas: int, device: str, threads: int) -> dict[str, str]:
    """Run target(0, *args) here: the N replicas are N devices of this process (on CPU, host
    devices the caller made with XLA_FLAGS before JAX started; they share one XLA thread pool)."""
    platform = "gpu" if device == "gpu" else "cpu"
    found = len(jax.devices(platform))
    if found < replicas:
        raise RuntimeError(f"JAX sees {found} {platform} device(s), {replicas} needed"
                           + (f": XLA_FLAGS must set --xla_force_host_platform_device_count={replicas} before JAX "
                              "starts" if platform == "cpu" else ""))
    target(0, *args)
    return {"backend": "XLA collectives (one process)", "threads_per_replica": None,
            "threads": "one XLA CPU thread pool, sized from the cell's cores, shared by the devices",
            "launcher": f"one process, {replicas} {platform} devices in a Mesh"
                        + (" (--xla_force_host_platform_device_count)" if platform == "cpu" else "")}


def bench_shard(train_step: Callable, state: Any, x: jax.Array, y: jax.Array, platform: str,
                replicas: int) -> tuple[jax.Array, jax.Array, Any, Callable]:
    """(x, y, state, step): the global batch split over a Mesh of the first `replicas` devices, the
    train state replicated, and the step jitted with the state donated and kept replicated."""
    mesh = Mesh(np.array(jax.devices(platform)[:replicas]), (AXIS,))
    every, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    step = jax.jit(train_step, donate_argnums=0, out_shardings=(every, every))
    return jax.device_put(x, split), jax.device_put(y, split), jax.device_put(state, every), step
