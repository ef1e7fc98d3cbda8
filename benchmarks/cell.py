"""The process that measures one cell: `python -m resnet_rosetta.benchmarks.cell CELL.json RESULT.json`.

Started fresh for every cell by `sweep.py`, with the thread variables already in its environment.
It pins itself to the sweep's cores, imports exactly one framework runner, measures our model alone
(then, for a cell `with_reference`, builds the reference model beside it and times both
interleaved), and writes one result JSON (atomically). A crash, an out-of-memory kill or a
timeout leaves no result file; the parent records those. A cell with a reference writes its
result once more before the pair starts, our figures with the pair `pending`: stopped during the
pair, the cell keeps our measurement and the parent records why the pair is missing.

`python -m resnet_rosetta.benchmarks.cell --gpu-count FRAMEWORK` prints how many GPUs that
framework sees (the `--device gpu` pre-check).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import time
import traceback
from typing import Callable

from ..common.atomic import atomic_write_text
from .config import PRECISIONS, Cell
from .environment import cpu_jiffies, current_rss_bytes, host_info, pin_threads, steal_fraction
from .timing import Timings, interleave, measure, summarize, summarize_ratio, warm_up
from .workload import MatmulMaker, Unsupported, Workload, looks_like_oom, matmul_peak

HOST_NOISE_N = 1024  # the matmul of the host-noise loop: ~10 ms a call on 2 cores, so ~100 calls a repeat


def _runner(framework: str):
    return importlib.import_module(f"{__package__}.runner_{framework}")


def failure(exc: BaseException) -> dict:
    """{"status", "message"} of a failed measurement: unsupported, oom or error (traceback logged)."""
    if isinstance(exc, Unsupported):
        return {"status": "unsupported", "message": str(exc)}
    traceback.print_exc()
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return {"status": "oom" if looks_like_oom(exc) else "error", "message": f"{type(exc).__name__}: {first_line}"}


def _measure_reference_pair(runner, cell: Cell, ours: Workload, ours_timings: Timings) -> dict:
    """The reference model built beside our (measured, warm) one, then both interleaved ABBA:
    {"status", "ours", "reference", "ratio", "rounds", "steal_fraction"}; a failure of the
    reference is recorded here and leaves our measurement intact."""
    try:
        t0 = time.perf_counter()
        ref = runner.build(dataclasses.replace(cell, impl="reference", with_reference=False))
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


def _host_noise(make: MatmulMaker, cell: Cell) -> dict:
    """A fixed fp32 matmul loop timed exactly like a model cell (warm-up, `repeats` repeats of
    about `repeat_s` seconds): the spread the host itself gives, the floor under every cell's."""
    f = make(HOST_NOISE_N)
    t = measure(f, lambda handles: None, warmup=cell.warmup, iters=0, repeats=cell.repeats,
                target_repeat_s=cell.repeat_s)  # f synchronises itself
    s = summarize(t, 1, 2 * HOST_NOISE_N ** 3)
    return {"n": HOST_NOISE_N, "spread": s["spread"], "gflop_s": s["gflop_s"], "repeats": cell.repeats,
            "iters": t.iters}


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
        if cell.kind == "peak":
            peaks = {}
            for precision in PRECISIONS:
                try:
                    make = runner.matmul_maker(cell.device, precision)
                    peaks[precision] = matmul_peak(make)
                    if precision == "fp32":
                        peaks[precision]["host_noise"] = _host_noise(make, cell)
                except Exception as exc:  # noqa: BLE001 - a dtype the framework cannot multiply
                    peaks[precision] = {"gflop_s": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
            record["metrics"] = {"matmul_peak": peaks}
        else:
            rss0 = current_rss_bytes()
            t0 = time.perf_counter()
            wl = runner.build(cell)
            setup_s = time.perf_counter() - t0
            jiffies = cpu_jiffies()
            timings = measure(wl.step, wl.sync, warmup=cell.warmup, iters=cell.iters, repeats=cell.repeats,
                              target_repeat_s=cell.repeat_s)
            metrics = summarize(timings, cell.batch, cell.flops_per_image())
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--gpu-count":
        try:
            print(_runner(argv[1]).gpu_count())
        except Exception as exc:  # noqa: BLE001
            print(f"0 {type(exc).__name__}: {exc}")
        return 0
    if len(argv) != 2:
        print("usage: python -m resnet_rosetta.benchmarks.cell CELL.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        cell = Cell.from_dict(json.load(f))

    def save(record: dict) -> None:
        atomic_write_text(argv[1], json.dumps(record, default=str) + "\n")

    save(run_cell(cell, save))
    return 0


if __name__ == "__main__":
    sys.exit(main())
