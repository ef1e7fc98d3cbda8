"""The timer: first call on its own, warm-up excluded, R repeats of N synchronised steps; or two
workloads interleaved round by round (ABBA), for a ratio that slow host drift does not bias.

Framework-neutral: the runner supplies `step()` (one training or inference step, returning
something to wait on) and `sync(handles)` (block until the device has finished them:
torch.cuda.synchronize, paddle.device.synchronize, jax.block_until_ready). The clock is read only
after `sync`, so asynchronous dispatch (CUDA, JAX) never makes a step look free.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Clock = Callable[[], float]


@dataclass
class Timings:
    first_call_s: float  # the first step: tracing / compilation / autotuning included
    warmup_s: float
    repeat_s: list[float]  # wall time of each repeat of `iters` steps
    iters: int


def _clock_reader(sync: Callable[[Sequence[Any]], None], clock: Clock) -> Callable[..., float]:
    def now(handles: Sequence[Any] = ()) -> float:
        sync(handles)  # every clock read follows a device synchronisation
        return clock()
    return now


def warm_up(step: Callable[[], Any], sync: Callable[[Sequence[Any]], None], warmup: int,
            clock: Clock = time.perf_counter) -> tuple[float, float, float]:
    """The first call, then `warmup` steps: (first call s, warm-up s, fastest single step s)."""
    now = _clock_reader(sync, clock)
    t0 = now()
    first = now([step()]) - t0
    warm, fastest = 0.0, first
    for _ in range(warmup):
        t0 = now()
        dt = now([step()]) - t0
        warm += dt
        fastest = min(fastest, dt)
    return first, warm, fastest


def _one_repeat(step: Callable[[], Any], now: Callable[..., float], iters: int) -> float:
    t0 = now()
    handles = [step() for _ in range(iters)]
    return now(handles) - t0


def measure(step: Callable[[], Any], sync: Callable[[Sequence[Any]], None], *, warmup: int, iters: int,
            repeats: int, target_repeat_s: float = 1.0, clock: Clock = time.perf_counter,
            after_warmup: Callable[[], None] = lambda: None) -> Timings:
    """`iters=0` picks the steps per repeat so that one repeat lasts about `target_repeat_s`
    (from the fastest warm-up step; at least 1), keeping fast cells out of timer noise and slow
    cells inside their budget. `after_warmup` runs between warm-up and the timed repeats (the
    runner's peak-memory reset)."""
    first, warm, fastest = warm_up(step, sync, warmup, clock)
    after_warmup()
    if iters <= 0:
        iters = max(1, min(1000, round(target_repeat_s / max(fastest, 1e-6))))
    now = _clock_reader(sync, clock)
    repeat_s = [_one_repeat(step, now, iters) for _ in range(repeats)]
    return Timings(first, warm, repeat_s, iters)


def interleave(a: tuple[Callable[[], Any], Callable[[Sequence[Any]], None]],
               b: tuple[Callable[[], Any], Callable[[Sequence[Any]], None]], *, iters: int, rounds: int,
               clock: Clock = time.perf_counter) -> tuple[list[float], list[float]]:
    """Two warmed-up (step, sync) workloads timed in `rounds` rounds of one repeat of `iters`
    steps each, the order alternating ABBA (a-b, b-a, ...), so a drift of the machine falls on
    both alike: (a's repeat times, b's repeat times)."""
    clocks = [_clock_reader(sync, clock) for _, sync in (a, b)]
    steps = [a[0], b[0]]
    repeat_s: list[list[float]] = [[], []]
    for k in range(rounds):
        for i in ((0, 1) if k % 2 == 0 else (1, 0)):
            repeat_s[i].append(_one_repeat(steps[i], clocks[i], iters))
    return repeat_s[0], repeat_s[1]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(q25, median, q75), linear interpolation as numpy's default; a single value repeats."""
    v = sorted(values)
    if not v:
        return (float("nan"),) * 3
    if len(v) == 1:
        return v[0], v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], statistics.median(v), q[2]


def summarize(t: Timings, batch: int, flops_per_image: int) -> dict[str, float]:
    """img/s and ms/step as median and inter-quartile range over the repeats; achieved GFLOP/s."""
    ips = [batch * t.iters / s for s in t.repeat_s]
    ms = [1000.0 * s / t.iters for s in t.repeat_s]
    i25, i50, i75 = quartiles(ips)
    m25, m50, m75 = quartiles(ms)
    return {
        "img_s_median": i50, "img_s_q25": i25, "img_s_q75": i75,
        "img_s_iqr": i75 - i25, "spread": (i75 - i25) / i50 if i50 else float("nan"),
        "ms_step_median": m50, "ms_step_q25": m25, "ms_step_q75": m75,
        "first_call_s": t.first_call_s, "warmup_s": t.warmup_s,
        "repeat_s": list(t.repeat_s), "img_s_repeats": ips,
        "gflop_s": i50 * flops_per_image / 1e9,
        "flops_per_image": flops_per_image,
    }


def summarize_ratio(ours_s: Sequence[float], reference_s: Sequence[float]) -> dict:
    """ours / reference throughput, round by round (same steps and batch in both repeats of a
    round, so the ratio is reference time / ours time); median and quartiles over the rounds."""
    per_round = [r / o for o, r in zip(ours_s, reference_s)]
    q25, q50, q75 = quartiles(per_round)
    return {"median": q50, "q25": q25, "q75": q75, "per_round": per_round}
