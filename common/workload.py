"""The contract between the benchmark and each framework's runner (`frameworks/<fw>/bench.py`):
what a runner builds (`WorkloadConfig`), what it hands back to the timer (`Workload`), the matmul
factory the peak probe times (`MatmulMaker`), and how an out-of-memory failure looks.

Standard library only: the framework-neutral benchmark and every framework folder import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

# make(n): a function running one synchronised n x n x n matmul (what a runner gives the probe)
MatmulMaker = Callable[[int], Callable[[], None]]


@dataclass(frozen=True)
class WorkloadConfig:
    """One model step for a runner to build: our spec-built model (`impl` "ours") or the
    framework's own zoo model ("reference"), in one mode, batch, precision and execution."""

    arch: str  # a preset name of common/spec.py
    impl: str  # "ours" or "reference"
    mode: str  # "infer" or "train"
    batch: int
    precision: str  # "fp32" or "bf16"
    execution: str  # "eager" or "compiled"
    channels_last: bool  # torch only: model and input in torch.channels_last
    size: int  # input height and width
    device: str  # "cpu" or "gpu"


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
