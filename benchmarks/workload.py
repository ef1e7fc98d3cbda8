"""What a framework runner hands to the timer, and the framework-neutral matmul peak probe."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


# make(n): a function running one synchronised n x n x n matmul (what a runner gives the probe)
MatmulMaker = Callable[[int], Callable[[], None]]


class Unsupported(Exception):
    """This configuration cannot run in this framework / on this device (recorded, not a crash)."""


@dataclass
class Workload:
    step: Callable[[], Any]  # one training or inference step; returns something to wait on
    sync: Callable[[Sequence[Any]], None]  # block until the device finished (and the handles are ready)
    peak_memory: Callable[[], dict]  # {"peak_memory_bytes": ..., "memory_kind": ...}
    settings: dict = field(default_factory=dict)  # what the runner switched on (documented per cell)


OOM_MARKERS = ("out of memory", "outofmemory", "resource_exhausted", "resourceexhausted",
               "cannot allocate memory", "bad_alloc", "failed to allocate", "memoryerror")


def looks_like_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or any(m in text for m in OOM_MARKERS)


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
