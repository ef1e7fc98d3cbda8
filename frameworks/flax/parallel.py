"""Data parallel in JAX: one process, N devices in a `Mesh` (on CPU, N host devices: XLA_FLAGS
--xla_force_host_platform_device_count=N, set by the caller before JAX starts), two variants:

- `flax`: the ordinary jitted step (training.py) with the batch sharded over the mesh
  (`NamedSharding`, P("data")) and everything else replicated: XLA partitions the whole step, so
  batch norm sees the GLOBAL batch (sync batch norm for free) and gradients are exact;
- `flax/shard_map`: the same loss under `jax.shard_map`, each device normalising its own shard;
  the gradient is that of the replicas' mean loss and the updated running statistics are averaged
  with `lax.pmean` (what Flax's ImageNet example does with its batch statistics).
Replicas are devices of one process (`run`), so a fault takes down all of them at once; or, across
processes and machines (`node`), each process started by hand holds its own devices after
`jax.distributed.initialize` (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) and the
same jitted step runs over the global mesh, its collectives over gloo (JAX's CPU default).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.replicas import ReplicaCase, buffers_of, mark_progress, replica, save_rank, step_state
from .adapter import gates_to_nchw
from .training import Trainer

AXIS = "data"


def run(case_file: str, folder: str, timeout: float, port: int | None = None) -> list[dict[str, object]]:
    """Train the dp case on N host devices, once per variant (`timeout` is the job's own limit and
    `port` unused: the replicas are devices of this process, nothing here waits on another process)."""
    case = ReplicaCase.load(Path(case_file))
    devices = jax.devices("cpu")
    if len(devices) < case.replicas:
        raise RuntimeError(f"JAX sees {len(devices)} CPU device(s), {case.replicas} needed: XLA_FLAGS must set "
                           f"--xla_force_host_platform_device_count={case.replicas} before JAX starts")
    return _variants(case, Mesh(np.array(devices[:case.replicas]), (AXIS,)), Path(folder), {
        "backend": "XLA CPU collectives (one process)",
        "launcher": f"one process, {case.replicas} host devices (--xla_force_host_platform_device_count)"})


def node(case_file: str, folder: str, timeout: float) -> list[dict[str, object]] | None:
    """This process is one of a multi-process JAX run (one or more machines): join it with
    `jax.distributed.initialize` (its coordinator bound to the address given, where JAX's default
    is every interface; unset JAX_NUM_PROCESSES / JAX_PROCESS_ID leave them to JAX's cluster detection),
    train its devices' replicas over the global mesh; process 0 returns the variants."""
    case = ReplicaCase.load(Path(case_file))
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    count, index = (int(os.environ[k]) if os.environ.get(k) else None for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"))
    try:
        jax.distributed.initialize(address, count, index, initialization_timeout=max(1, int(timeout)),
                                   coordinator_bind_address=os.environ.get("JAX_COORDINATOR_BIND_ADDRESS", address))
    except (ValueError, TypeError) as exc:  # what JAX could not find in the environment
        raise UserError(f"--dp-node: jax.distributed.initialize: {exc} (set JAX_COORDINATOR_ADDRESS=HOST:PORT, "
                        "JAX_NUM_PROCESSES and JAX_PROCESS_ID, or run under a cluster JAX detects)") from None
    if jax.device_count() != case.replicas:
        raise UserError(f"--dp-node: JAX sees {jax.device_count()} devices in {jax.process_count()} processes, but "
                        f"--data-parallel is {case.replicas}")
    collectives = jax.config.jax_cpu_collectives_implementation
    infos = _variants(case, Mesh(np.array(jax.devices()), (AXIS,)), Path(folder), {
        "backend": f"XLA collectives across {jax.process_count()} processes ({collectives} on CPU)",
        "launcher": f"jax.distributed.initialize, coordinator {address or '(cluster-detected)'}, "
                    "one process per machine, started by hand"})
    multihost_utils.sync_global_devices("resnet-rosetta dp: every rank file written")
    return infos if jax.process_index() == 0 else None


def _variants(case: ReplicaCase, mesh: Mesh, folder: Path, where: dict[str, str]) -> list[dict[str, object]]:
    """Both variants on `mesh`, each writing the files of this process's devices."""
    infos = []
    for variant, engine, bn, rule, sync in (
            ("flax", "jax.jit over a Mesh, batch NamedSharding P('data'), the rest replicated", "sync", "global",
             {"status": "available", "reason": "XLA partitions the batch-norm reductions over the whole batch"}),
            ("flax/shard_map", "jax.shard_map over a Mesh, gradient of the lax.pmean'd loss, statistics pmean'd",
             "local", "replica_mean", {"status": "not used", "reason": "nn.BatchNorm(axis_name='data') would "
                                                                      "synchronise; this variant keeps per-replica"})):
        _train(case, mesh, folder / variant.replace("/", "-"), variant == "flax/shard_map")
        infos.append({"variant": variant, "engine": engine, "batch_norm": bn, "running_stats_rule": rule,
                      "framework": "flax", "replicas": case.replicas, **where, "sync_batch_norm": sync})
    return infos


def _train(case: ReplicaCase, mesh: Mesh, out: Path, per_replica: bool) -> None:
    """K steps over the mesh; this process writes the rank files of its own devices (all of them
    in one process), rank 0's parameters and momentum from device 0."""
    trainer = Trainer(case.spec, case.weights, lr=case.lr, momentum=case.momentum, weight_decay=case.weight_decay,
                      record_gates=True)
    every, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    step = _local_step(trainer, mesh) if per_replica else jax.jit(
        trainer.step_fn, out_shardings=(every, every, every, every, split))
    state = jax.tree.map(lambda a: _put(np.asarray(a), every), (trainer.params, trainer.batch_stats, trainer.opt_state))
    mine = {r: d for r, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()}
    ranks: dict[int, dict[str, np.ndarray]] = {r: {} for r in mine}
    with replica(out, min(mine)):
        for k, (bx, by) in enumerate(case.batches, start=1):
            x = _put(np.ascontiguousarray(np.transpose(bx, (0, 2, 3, 1)), np.float32), split)
            loss, params, stats, opt, gates = step(*state, x, _put(np.asarray(by, np.int32), split))
            state = (params, stats, opt)
            for r, device in mine.items():
                mark_progress(out, r, k)
                ranks[r][f"loss/{k}"] = _on_device(loss, device).astype(np.float64).reshape(-1)[:1]
                ranks[r].update({f"gates/{k}/{site}": g for site, g in
                                 gates_to_nchw({s: _on_device(g, device) for s, g in gates.items()}).items()})
            if 0 in mine:
                _local_state(trainer, state, mine[0])
                ranks[0].update(step_state(k, trainer.canonical_weights(), trainer.optimizer_state()))
        for r, device in mine.items():  # each device's own copy of the running statistics
            _local_state(trainer, state, device)
            ranks[r].update(buffers_of(trainer.canonical_weights()))
            save_rank(out, r, ranks[r])


def _put(a: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global NumPy array placed on the mesh: each process supplies the slices of its own devices."""
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def _local_state(trainer: Trainer, state: tuple, device: Any) -> None:
    """The trainer's state as `device` holds it (replicated arrays: the same on every device)."""
    trainer.params, trainer.batch_stats, trainer.opt_state = jax.tree.map(
        lambda a: jnp.asarray(_on_device(a, device)), state)


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
