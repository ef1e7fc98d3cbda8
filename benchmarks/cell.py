"""The process that measures one cell: `measure_cell(cell)`, run in a fresh process by `sweep.py`
(through common/process.py) with the thread variables already in its environment.

It pins itself to the sweep's cores, loads one framework's runner (`frameworks/<fw>/bench.py`),
measures our model alone (then, for a cell `with_reference`, builds the reference model beside it
and times both interleaved), and returns one result record. A crash, an out-of-memory kill or a
timeout leaves no result; the parent records those. A cell with a reference saves a result once
before the pair starts, our figures with the pair `pending`: stopped during the pair, the cell
keeps our measurement and the parent records why the pair is missing.
"""
from __future__ import annotations

import os
import time
import traceback
from types import ModuleType
from typing import Callable

from resnet_rosetta import frameworks
from resnet_rosetta.common import process
from resnet_rosetta.common.errors import Unsupported, first_line
from resnet_rosetta.common.host import cpu_jiffies, current_rss_bytes, host_info, pin_threads, steal_fraction
from resnet_rosetta.common.workload import Workload, looks_like_oom, math_mode
from . import dp
from .gpu_facts import gpu_facts
from .config import Cell
from .probe import matmul_peaks
from .timing import Timings, interleave, measure, summarize, summarize_ratio, warm_up


def _runner(framework: str) -> ModuleType:
    """The framework's runner, `frameworks/<fw>/bench.py`."""
    return frameworks.load(framework, "bench")


def failure(exc: BaseException) -> dict:
    """{"status", "message"} of a failed measurement: unsupported, oom or error (traceback logged)."""
    if isinstance(exc, Unsupported):
        return {"status": "unsupported", "message": str(exc)}
    traceback.print_exc()
    return {"status": "oom" if looks_like_oom(exc) else "error", "message": f"{type(exc).__name__}: {first_line(exc)}"}


def _measure_reference_pair(runner: ModuleType, cell: Cell, ours: Workload, ours_timings: Timings) -> dict:
    """The reference model built beside our (measured, warm) one, then both interleaved ABBA:
    {"status", "ours", "reference", "ratio", "rounds", "steal_fraction"}; a failure of the
    reference is recorded here and leaves our measurement intact."""
    try:
        t0 = time.perf_counter()
        ref = runner.build(cell.workload_config(impl="reference"))
        setup_s = time.perf_counter() - t0
        first, warm, _ = warm_up(ref.step, ref.sync, cell.warmup)
        jiffies = cpu_jiffies()
        ours_s, ref_s = interleave((ours.step, ours.sync), (ref.step, ref.sync), iters=ours_timings.iters,
                                   rounds=cell.pair_rounds)
    except Exception as exc:  # noqa: BLE001 - the reference's failure must not lose our measurement
        return failure(exc)
    flops = cell.flops_per_image()
    return {"status": "ok", "message": "",
            "ours": summarize(Timings(ours_timings.first_call_s, ours_timings.warmup_s, ours_s, ours_timings.iters),
                              cell.batch, flops),
            "reference": {**summarize(Timings(first, warm, ref_s, ours_timings.iters), cell.batch, flops),
                          "setup_s": setup_s},
            "ratio": summarize_ratio(ours_s, ref_s), "rounds": cell.pair_rounds,
            "steal_fraction": steal_fraction(jiffies, cpu_jiffies())}


PENDING = "pending"  # a pair's status while it is being measured (what a stopped cell leaves behind)


def run_cell(cell: Cell, save: Callable[[dict], None] = lambda record: None) -> dict:
    """Measure `cell`; `save(record)` is called with our figures before a reference pair starts."""
    record: dict = {"status": "error", "message": "", "metrics": {}, "settings": {}}
    cpus = pin_threads(cell.threads)
    env = {**host_info(), "threads": cell.threads, "pinned_cpus": cpus,
           "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE"),
           "MKL_DEBUG_CPU_TYPE": os.environ.get("MKL_DEBUG_CPU_TYPE")}
    record["env"] = env
    try:
        runner = _runner(cell.framework)
        runner.setup_threads(cell.threads)
        env.update(runner.info(cell.device))
        if cell.device == "gpu":
            env["gpu"] = gpu_facts()
        if cell.kind == "peak":
            record["metrics"] = {"matmul_peak": matmul_peaks(runner, cell)}
        elif cell.devices > 1:  # data parallel: N replicas and the one-device baseline, interleaved
            record["metrics"], record["settings"] = dp.measure(cell)
        else:
            rss0 = current_rss_bytes()
            t0 = time.perf_counter()
            wl = runner.build(cell.workload_config())
            setup_s = time.perf_counter() - t0
            jiffies = cpu_jiffies()
            timings = measure(wl.step, wl.sync, warmup=cell.warmup, iters=cell.iters, repeats=cell.repeats,
                              target_repeat_s=cell.repeat_s, after_warmup=wl.reset_peak_memory)
            metrics = summarize(timings, cell.batch, cell.flops_per_image())
            metrics["math_mode"] = math_mode(cell.precision, cell.device, wl.settings.get("tf32") or {})
            metrics.update(wl.peak_memory(), setup_s=setup_s, rss_before_model_bytes=rss0, iters=timings.iters,
                           steal_fraction=steal_fraction(jiffies, cpu_jiffies()))
            record["metrics"] = metrics
            record["settings"] = wl.settings
            if cell.with_reference:  # after our model's figures (memory included) are taken alone
                metrics["pair"] = {"status": PENDING, "message": "the reference pair was being measured"}
                save({**record, "status": "ok"})
                metrics["pair"] = _measure_reference_pair(runner, cell, wl, timings)
        record["status"] = "ok"
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a recorded status
        record.update(failure(exc))
    return record


def measure_cell(cell: dict) -> dict:
    """The cell process's entry (through common/process.py): measure one cell, saving our figures
    as the result before a reference pair starts."""
    return run_cell(Cell.from_dict(cell), process.save_result)
