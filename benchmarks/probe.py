"""The peak-probe cell: the machine's matmul peak in each precision, and the host's own noise
floor (a fixed fp32 matmul loop timed exactly like a model cell). Framework-neutral: the runner
supplies only a matmul factory (`matmul_maker(device, precision)`)."""
from __future__ import annotations

import time
from types import ModuleType
from typing import Sequence

from resnet_rosetta.common.workload import MatmulMaker
from .config import PRECISIONS, Cell
from .timing import measure, summarize

HOST_NOISE_N = 1024  # the matmul of the host-noise loop: many calls a repeat (docs/benchmarks.md)


def matmul_peak(make: MatmulMaker, *, sizes: Sequence[int] = (512, 1024, 2048, 4096),
                grow_until_s: float = 0.1, measure_s: float = 0.25, rounds: int = 3) -> dict:
    """Best GFLOP/s of an n x n x n matmul, n grown until one call takes `grow_until_s`.

    `make(n)` returns a function that runs one synchronised matmul of size n. The peak is the best
    round (a peak, not a typical value); slow dtypes (bf16 without hardware support) stop at small n.
    """
    best, chosen, tried = 0.0, sizes[0], []
    for n in sizes:
        f = make(n)
        f()  # compile / allocate
        t0 = time.perf_counter()
        f()
        dt = max(time.perf_counter() - t0, 1e-9)
        reps = max(1, int(measure_s / dt))
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            g = 2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9
            if g > best:
                best, chosen = g, n
        tried.append(n)
        if dt >= grow_until_s:
            break
    return {"gflop_s": best, "n": chosen, "sizes_tried": tried}


def host_noise(make: MatmulMaker, cell: Cell) -> dict:
    """A fixed fp32 matmul loop timed exactly like a model cell (warm-up, `repeats` repeats of
    about `repeat_s` seconds): the spread the host itself gives, the floor under every cell's."""
    f = make(HOST_NOISE_N)
    t = measure(f, lambda handles: None, warmup=cell.warmup, iters=0, repeats=cell.repeats,
                target_repeat_s=cell.repeat_s)  # f synchronises itself
    s = summarize(t, 1, 2 * HOST_NOISE_N ** 3)
    return {"n": HOST_NOISE_N, "spread": s["spread"], "gflop_s": s["gflop_s"], "repeats": cell.repeats,
            "iters": t.iters}


def matmul_peaks(runner: ModuleType, cell: Cell) -> dict:
    """{precision: matmul_peak (fp32 with its host_noise)}; a dtype the framework cannot multiply
    is recorded with its error instead."""
    peaks = {}
    for precision in PRECISIONS:
        try:
            make = runner.matmul_maker(cell.device, precision)
            peaks[precision] = matmul_peak(make)
            if precision == "fp32":
                peaks[precision]["host_noise"] = host_noise(make, cell)
        except Exception as exc:  # noqa: BLE001 - a dtype the framework cannot multiply
            peaks[precision] = {"gflop_s": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return peaks
