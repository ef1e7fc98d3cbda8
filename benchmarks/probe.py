"""The peak-probe cell: the machine's matmul peak in each math mode (fp32 strict, TF32, bf16, and
fp16 on a GPU: `DEVICE_MATH_MODES`), and the host's own noise floor (a fixed fp32 matmul loop timed
exactly like a model cell). Framework-neutral: the runner supplies a matmul factory
(`matmul_maker(device, mode)`, which sets the TF32 switches of fp32 and tf32 explicitly) and
`tf32_state()`, the switches read back.

On a GPU the matrices grow to 16384 (an H200 needs n >= 8192 to reach its peak) and each batch of
calls synchronises once, so the launch gap is not timed.
"""
from __future__ import annotations

import time
from types import ModuleType
from typing import Sequence

from resnet_rosetta.common.workload import DEVICE_MATH_MODES, MatmulMaker, tf32_overridden
from .config import Cell
from .timing import measure, summarize

HOST_NOISE_N = 1024  # the matmul of the host-noise loop: many calls a repeat (docs/benchmarks.md)
# (sizes, seconds one call must reach before the probe stops growing n) per device; on a CPU bf16 still
# gains from 2048 to 4096 (docs/benchmarks.md), so n grows until a call takes 0.3 s
PROBE_SIZES = {"cpu": ((512, 1024, 2048, 4096), 0.3), "gpu": ((2048, 4096, 8192, 16384), 1.0)}


def matmul_peak(make: MatmulMaker, *, sizes: Sequence[int] = PROBE_SIZES["cpu"][0], grow_until_s: float = 0.1,
                measure_s: float = 0.25, rounds: int = 3, clock=time.perf_counter) -> dict:
    """Best GFLOP/s of an n x n x n matmul, n grown until one call takes `grow_until_s`.

    `make(n)` returns f; f(reps) runs reps matmuls and synchronises once. The peak is the best
    round (a peak, not a typical value); slow dtypes (bf16 without hardware support) stop at small n.
    """
    best, chosen, tried = 0.0, sizes[0], []
    for n in sizes:
        f = make(n)
        f(1)  # compile / allocate
        t0 = clock()
        f(1)
        dt = max(clock() - t0, 1e-9)
        reps = max(1, int(measure_s / dt))
        for _ in range(rounds):
            t0 = clock()
            f(reps)
            g = 2.0 * n ** 3 * reps / max(clock() - t0, 1e-9) / 1e9
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
    t = measure(lambda: f(1), lambda handles: None, warmup=cell.warmup, iters=0, repeats=cell.repeats,
                target_repeat_s=cell.repeat_s)  # f synchronises itself
    s = summarize(t, 1, 2 * HOST_NOISE_N ** 3)
    return {"n": HOST_NOISE_N, "spread": s["spread"], "gflop_s": s["gflop_s"], "repeats": cell.repeats,
            "iters": t.iters}


def probe_modes(device: str) -> tuple[str, ...]:
    """The math modes probed on `device`; TF32 is left out where NVIDIA_TF32_OVERRIDE=0 forbids it."""
    return tuple(m for m in DEVICE_MATH_MODES[device] if not (m == "tf32" and tf32_overridden()))


def matmul_peaks(runner: ModuleType, cell: Cell) -> dict:
    """{mode: matmul_peak (+ the TF32 switches read back for fp32 and tf32; fp32 with its
    host_noise)}; a dtype the framework cannot multiply is recorded with its error instead."""
    peaks = {}
    sizes, grow_until_s = PROBE_SIZES[cell.device]
    for mode in probe_modes(cell.device):
        try:
            make = runner.matmul_maker(cell.device, mode)
            peaks[mode] = matmul_peak(make, sizes=sizes, grow_until_s=grow_until_s)
            if mode in ("fp32", "tf32"):
                peaks[mode]["tf32"] = runner.tf32_state()
            if mode == "fp32":
                peaks[mode]["host_noise"] = host_noise(make, cell)
        except Exception as exc:  # noqa: BLE001 - a dtype the framework cannot multiply
            peaks[mode] = {"gflop_s": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return peaks
