"""`bench --devices N`: data-parallel training throughput, with the one-device figure measured in
the same run.

A cell with `devices` N > 1 runs here, inside its fresh cell process: the framework's own launcher
(`frameworks/<fw>/parallel.py` `launch_bench`) starts N replicas (torch, Paddle: N processes of one
process group; JAX: N devices of this process), each building the benchmark's training step
wrapped by its engine (`frameworks/<fw>/bench.py` with `devices` N; `batch` is per replica) with
the cell's threads split evenly. Rank 0 also builds the one-device step (the same configuration
with all the cell's threads: what `--devices 1` measures) and times both interleaved ABBA
(timing.py) while the other replicas wait at the next barrier. Every clock read of the N-device
step follows a device sync and a barrier of all replicas. Scaling efficiency is img/s(N) /
(N x img/s(1)), taken round by round: on CPU the N replicas share the same cores, so 1/N means
no gain (see docs/benchmarks.md).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from resnet_rosetta import frameworks
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import Unsupported
from resnet_rosetta.common.host import cpu_jiffies, steal_fraction
from resnet_rosetta.common.workload import math_mode
from .config import Cell
from .timing import Timings, interleave, summarize, summarize_ratio, warm_up

Sync = Callable[[Sequence[Any]], None]


def cell_env(cell: Cell) -> dict[str, str]:
    """What a data-parallel cell's process needs before it starts: N host devices for XLA (read by
    JAX only; torch and Paddle start N processes instead)."""
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={cell.devices}"} if cell.devices > 1 else {}


def threads_per_replica(cell: Cell) -> int:
    """The cell's threads split evenly over its replicas (the plan refuses fewer threads than replicas)."""
    return max(1, cell.threads // cell.devices)


def measure(cell: Cell) -> tuple[dict, dict]:
    """(metrics, settings) of a data-parallel cell: N replicas started by the framework's launcher;
    rank 0's record comes back through a file."""
    with tempfile.TemporaryDirectory(prefix="resnet-rosetta-dp-") as folder:
        path = Path(folder) / "rank0.json"
        try:
            started = frameworks.load(cell.framework, "parallel").launch_bench(
                replica, (cell.to_dict(), str(path)), cell.devices, cell.device, threads_per_replica(cell))
        finally:  # a replica's Unsupported crosses the launcher as its own error: recorded as unsupported
            found = json.loads(path.read_text()) if path.exists() else {}
            if "unsupported" in found:
                raise Unsupported(found["unsupported"])
        if not found:
            raise RuntimeError(f"{cell.framework}'s replicas ended without rank 0's result")
    # None where the replicas share one thread pool (JAX's devices of one process)
    found["metrics"]["threads_per_replica"] = started.pop("threads_per_replica", found["metrics"]["threads_per_replica"])
    found["settings"]["data_parallel"].update(started, replicas=cell.devices)
    return found["metrics"], found["settings"]


def _threads(runner: Any, threads: int, sync: Sync) -> Sync:
    """`sync`, then the runner's threads set to `threads` (before the clock read that starts a repeat)."""
    def both(handles: Sequence[Any]) -> None:
        sync(handles)
        runner.setup_threads(threads)
    return both


def replica(rank: int, cell_dict: dict, result_path: str) -> None:
    """One replica (rank 0 also times the one-device step and writes the record)."""
    cell = Cell.from_dict(cell_dict)
    runner = frameworks.load(cell.framework, "bench")
    per = threads_per_replica(cell)
    runner.setup_threads(per)
    t0 = time.perf_counter()
    try:
        dp = runner.build(cell.workload_config())
    except Unsupported as exc:
        atomic_write_text(Path(result_path), json.dumps({"unsupported": str(exc)}))
        raise
    setup_s = time.perf_counter() - t0
    one = runner.build(cell.workload_config(devices=1)) if rank == 0 else None
    first, warm, fastest = warm_up(dp.step, dp.sync, cell.warmup)
    dp.reset_peak_memory()
    alone: tuple[Callable[[], Any], Sync] = (lambda: None, lambda handles: None)  # the others during rank 0's
    if one is not None:
        runner.setup_threads(cell.threads)
        one_first, one_warm, _ = warm_up(one.step, one.sync, cell.warmup)
        alone = (one.step, _threads(runner, cell.threads, one.sync))
    iters = dp.broadcast(cell.iters or max(1, min(1000, round(cell.repeat_s / max(fastest, 1e-6)))))
    jiffies = cpu_jiffies()
    dp_s, one_s = interleave((dp.step, _threads(runner, per, dp.sync)), alone, iters=iters, rounds=cell.pair_rounds)
    if one is None:
        return
    flops = cell.flops_per_image()
    metrics = summarize(Timings(first, warm, dp_s, iters), cell.global_batch, flops)
    metrics.update(dp.peak_memory(), setup_s=setup_s, iters=iters, rounds=cell.pair_rounds, devices=cell.devices,
                   global_batch=cell.global_batch, threads_per_replica=per,
                   math_mode=math_mode(cell.precision, cell.device, dp.settings.get("tf32") or {}),
                   steal_fraction=steal_fraction(jiffies, cpu_jiffies()),
                   one_device={**summarize(Timings(one_first, one_warm, one_s, iters), cell.batch, flops),
                               "threads": cell.threads},
                   scaling_efficiency=summarize_ratio(dp_s, one_s))
    atomic_write_text(Path(result_path), json.dumps({"metrics": metrics, "settings": dp.settings}))
