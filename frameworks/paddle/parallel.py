"""Data parallel in Paddle: paddle.DataParallel over paddle.distributed (gloo on a CPU build), one
process per replica started by paddle.distributed.spawn, rendezvous on 127.0.0.1 at a free port
(`run`); or one replica in each process `python -m paddle.distributed.launch` starts, on any number
of machines, from its environment (PADDLE_TRAINER_ID, PADDLE_TRAINERS_NUM,
PADDLE_TRAINER_ENDPOINTS, read by `init_parallel_env`: `node`).

Each replica wraps the ordinary trainer's model (training.py) in DataParallel and trains its shard
of every global batch; DataParallel averages the gradients (and copies rank 0's parameters and
buffers once, when it is built). SyncBatchNorm is tried on the same device and reported, never
substituted.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import paddle
import paddle.distributed as dist

from resnet_rosetta.common.replicas import (HOST, ReplicaCase, expect_world, free_port, replica, save_sync_bn,
                                           sync_bn_record, train_replica)
from .training import Trainer

BACKEND = "gloo"


def run(case_file: str, folder: str, timeout: float, port: int | None = None) -> list[dict[str, object]]:
    """Train the dp case with N replicas at ports `port`.. (default: from a free one); one variant:
    `paddle` (local batch norm). `timeout` is the job's own limit (parity/dataparallel.py): spawn
    has no rendezvous timeout to pass it to."""
    case = ReplicaCase.load(Path(case_file))
    out = Path(folder) / "paddle"
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // case.replicas)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by each spawned replica when Paddle starts
    dist.spawn(_replica, args=(case_file, str(out)), nprocs=case.replicas, join=True, backend=BACKEND,
               ips=HOST, started_port=port or free_port())
    return [_info(case, out, threads, f"paddle.distributed.spawn, one process per replica, {HOST}")]


def node(case_file: str, folder: str, timeout: float) -> list[dict[str, object]] | None:
    """This process is one replica of a `paddle.distributed.launch` run (one or more machines):
    train it from the launcher's environment; rank 0 returns the variant, once every replica has
    written its file (`timeout`: the launcher, not this process, watches the replicas)."""
    case = ReplicaCase.load(Path(case_file))
    expect_world("PADDLE_TRAINERS_NUM", case.replicas, "python -m paddle.distributed.launch")
    out = Path(folder) / "paddle"
    rank = _replica(case_file, str(out))
    master = os.environ.get("PADDLE_MASTER", "")
    return [_info(case, out, int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count() or 1,
                  f"paddle.distributed.launch, one process per replica, master {master}")] if rank == 0 else None


def _info(case: ReplicaCase, out: Path, threads: int, launcher: str) -> dict[str, object]:
    return {"variant": "paddle", "framework": "paddle", "engine": "paddle.DataParallel", "backend": BACKEND,
            "launcher": launcher, "replicas": case.replicas, "threads_per_replica": threads, "batch_norm": "local",
            "running_stats_rule": "local", "sync_batch_norm": sync_bn_record(out)}


def _replica(case_file: str, folder: str) -> int:
    """One replica in a process the launcher started; returns its rank."""
    out = Path(folder)
    dist.init_parallel_env()
    rank = dist.get_rank()
    with replica(out, rank):
        case = ReplicaCase.load(Path(case_file))
        trainer = Trainer(case.spec, case.weights, lr=case.lr, momentum=case.momentum,
                          weight_decay=case.weight_decay, record_gates=True)
        trainer.model = paddle.DataParallel(trainer.model)
        train_replica(trainer, case, rank, out)
        reason = _try_sync_bn()  # on every rank: where it runs, it is a collective
        if rank == 0:
            save_sync_bn(out, reason)
        dist.barrier()  # every replica's files are written before rank 0 reads them
    return rank


def _try_sync_bn() -> str:
    """SyncBatchNorm on this device: '' when a train-mode forward runs, else the engine's own error."""
    layer = paddle.nn.SyncBatchNorm(4)
    layer.train()
    try:
        layer(paddle.to_tensor(np.zeros((2, 4, 4, 4), np.float32)))
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return ""


# `bench --devices N` (benchmarks/dp.py): the same engine timing the benchmark's training step.

def launch_bench(target: Callable[..., None], args: tuple, replicas: int, device: str, threads: int) -> dict[str, str]:
    """Run target(rank, *args) in `replicas` processes started by paddle.distributed.spawn (gloo on a
    CPU build, nccl on GPUs), each with `threads` threads; how they were started."""
    backend = "nccl" if device == "gpu" else BACKEND
    os.environ.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})  # read as Paddle starts
    dist.spawn(_bench_replica, args=(target, args), nprocs=replicas, join=True, backend=backend, ips=HOST,
               started_port=free_port())
    return {"backend": backend, "threads": f"{threads} per replica (OMP_NUM_THREADS, MKL_NUM_THREADS)",
            "launcher": f"paddle.distributed.spawn, one process per replica, {HOST}"}


def _bench_replica(target: Callable[..., None], args: tuple) -> None:
    dist.init_parallel_env()
    target(dist.get_rank(), *args)


def bench_wrap(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The benchmark's model under paddle.DataParallel (its defaults)."""
    return paddle.DataParallel(model)


def bench_barrier(device: str) -> None:
    """Every replica has finished its queued work (a clock read follows)."""
    if device == "gpu":
        paddle.device.synchronize()
    dist.barrier()


def bench_broadcast(value: int) -> int:
    """Rank 0's `value` on every replica."""
    t = paddle.to_tensor([value], dtype="int64")
    dist.broadcast(t, src=0)
    return int(t.item())
