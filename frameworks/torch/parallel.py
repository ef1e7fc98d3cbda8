"""Data parallel in PyTorch: DistributedDataParallel over torch.distributed (gloo on CPU), one
process per replica started by torch.multiprocessing, rendezvous on 127.0.0.1 at a free port
(`run`); or one replica in each process `torchrun` starts, on any number of machines, from its
environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT: `node`).

Each replica wraps the ordinary trainer's model (training.py) in DDP with its defaults
(broadcast_buffers=True: rank 0's running statistics are copied to every rank before each
forward) and trains its shard of every global batch; DDP averages the gradients. SyncBatchNorm
is tried on the same shards and reported, never substituted.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resnet_rosetta.common.replicas import (HOST, ReplicaCase, expect_world, free_port, replica, save_sync_bn,
                                           sync_bn_record, train_replica)
from .training import Trainer

BACKEND = "gloo"


def run(case_file: str, folder: str, timeout: float, port: int | None = None) -> list[dict[str, object]]:
    """Train the dp case with N replicas, rendezvous at `port` (default: a free one); one variant:
    `torch` (local batch norm)."""
    case = ReplicaCase.load(Path(case_file))
    out = Path(folder) / "torch"
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, torch.get_num_threads() // case.replicas)
    mp.start_processes(_replica, args=(case_file, str(out), port or free_port(), threads, timeout),
                       nprocs=case.replicas, join=True, start_method="spawn")
    return [_info(case, out, threads, "torch.multiprocessing.start_processes (spawn), one process per replica, "
                                      f"tcp://{HOST}")]


def node(case_file: str, folder: str, timeout: float) -> list[dict[str, object]] | None:
    """This process is one replica of a `torchrun` launch (one or more machines): train it from the
    launcher's environment; rank 0 returns the variant, once every replica has written its file."""
    case = ReplicaCase.load(Path(case_file))
    expect_world("WORLD_SIZE", case.replicas, "torchrun")
    rank, out = int(os.environ["RANK"]), Path(folder) / "torch"
    _replica(rank, case_file, str(out), None, torch.get_num_threads(), timeout)
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    return [_info(case, out, torch.get_num_threads(), f"torchrun, one process per replica, env:// ({where})")] \
        if rank == 0 else None


def _info(case: ReplicaCase, out: Path, threads: int, launcher: str) -> dict[str, object]:
    return {"variant": "torch", "framework": "torch",
            "engine": "torch.nn.parallel.DistributedDataParallel (broadcast_buffers=True, the default)",
            "backend": BACKEND, "launcher": launcher, "replicas": case.replicas, "threads_per_replica": threads,
            "batch_norm": "local", "running_stats_rule": "rank0_broadcast", "sync_batch_norm": sync_bn_record(out)}


def _replica(rank: int, case_file: str, folder: str, port: int | None, threads: int, timeout: float) -> None:
    """One replica; rendezvous at tcp://HOST:port, or (port None) as the launcher's env:// says."""
    out = Path(folder)
    with replica(out, rank):
        torch.set_num_threads(threads)
        case = ReplicaCase.load(Path(case_file))
        init = "env://" if port is None else f"tcp://{HOST}:{port}"
        dist.init_process_group(BACKEND, init_method=init, rank=rank, world_size=case.replicas,
                                timeout=datetime.timedelta(seconds=timeout + 60))  # the job's limit ends it first
        try:
            trainer = Trainer(case.spec, case.weights, lr=case.lr, momentum=case.momentum,
                              weight_decay=case.weight_decay, record_gates=True)
            trainer.model = torch.nn.parallel.DistributedDataParallel(trainer.model)
            train_replica(trainer, case, rank, out)
            reason = _try_sync_bn(trainer)  # on every rank: where it runs, it is a collective
            if rank == 0:
                save_sync_bn(out, reason)
            dist.barrier()  # every replica's files are written before rank 0 reads them
        finally:
            dist.destroy_process_group()


def _try_sync_bn(trainer: Trainer) -> str:
    """SyncBatchNorm on this device: '' when a train-mode forward runs, else the engine's own error."""
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(trainer.model.module.bn1)
    x = torch.zeros((2, model.num_features, 4, 4))
    try:
        model.train()(x)
    except (ValueError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return ""


# `bench --devices N` (benchmarks/dp.py): the same engine timing the benchmark's training step.

def launch_bench(target: Callable[..., None], args: tuple, replicas: int, device: str, threads: int) -> dict[str, str]:
    """Run target(rank, *args) in `replicas` processes of one process group (gloo on CPU, nccl on
    GPU with one GPU per rank), each with `threads` intra-op threads; how they were started."""
    backend = "nccl" if device == "gpu" else BACKEND
    mp.start_processes(_bench_replica, args=(target, args, replicas, free_port(), backend, threads),
                       nprocs=replicas, join=True, start_method="spawn")
    return {"backend": backend, "threads": f"{threads} per replica (torch.set_num_threads)",
            "launcher": f"torch.multiprocessing.start_processes (spawn), one process per replica, tcp://{HOST}"}


def _bench_replica(rank: int, target: Callable[..., None], args: tuple, replicas: int, port: int, backend: str,
                   threads: int) -> None:
    torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"tcp://{HOST}:{port}", rank=rank, world_size=replicas)
    try:
        target(rank, *args)
    finally:
        dist.destroy_process_group()


def bench_wrap(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """The benchmark's model under DDP with its defaults (one device per process)."""
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if dev.type == "cuda" else None)


def bench_barrier(dev: torch.device) -> None:
    """Every replica has finished its queued work (a clock read follows)."""
    if dev.type == "cuda":
        torch.cuda.synchronize()
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def bench_broadcast(value: int, dev: torch.device) -> int:
    """Rank 0's `value` on every replica."""
    t = torch.tensor([value], dtype=torch.int64, device=dev)
    dist.broadcast(t, src=0)
    return int(t.item())
