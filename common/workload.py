"""The contract between the benchmark and each framework's runner (`frameworks/<fw>/bench.py`):
what a runner builds (`WorkloadConfig`), what it hands back to the timer (`Workload`), the matmul
factory the peak probe times (`MatmulMaker`), the math modes a cell can compute in (`math_mode`: a
cell's throughput is divided by the matmul peak of its own mode), and how an out-of-memory
failure looks.

Standard library only: the framework-neutral benchmark and every framework folder import it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

# make(n) -> f; f(reps) runs `reps` n x n x n matmuls back to back and synchronises once at the end
# (one synchronisation per batch of calls: on a GPU a sync per call would time the launch gap)
MatmulMaker = Callable[[int], Callable[[int], None]]

# The math modes the probe measures: fp32 strict (TF32 off), TF32 (fp32 storage, 10-bit mantissa
# products on Ampere+ GPUs), bf16 and fp16 (fp16 on GPUs only). CPUs have no TF32.
MATH_MODES = ("fp32", "tf32", "bf16", "fp16")
DEVICE_MATH_MODES = {"cpu": ("fp32", "bf16"), "gpu": MATH_MODES}


TF32_ENV = "RESNET_ROSETTA_TF32"  # "off" (the sweep's --tf32 off): every runner switches TF32 off itself


def tf32_policy(env: dict | None = None) -> str:
    """"off" when the sweep asked for no TF32 (or NVIDIA_TF32_OVERRIDE=0 forbids it), else "default"."""
    env = os.environ if env is None else env
    return "off" if env.get(TF32_ENV) == "off" or tf32_overridden(env) else "default"


def apply_tf32_policy(set_tf32: Callable[[bool], None]) -> None:
    """A runner's TF32 switches off under the "off" policy (called before anything reads them)."""
    if tf32_policy() == "off":
        set_tf32(False)


def tf32_overridden(env: dict | None = None) -> bool:
    """NVIDIA_TF32_OVERRIDE=0: cuBLAS and cuDNN refuse TF32 whatever a framework asks for."""
    return (os.environ if env is None else env).get("NVIDIA_TF32_OVERRIDE") == "0"


TF32_CAPABILITY = (8, 0)  # TF32 tensor cores: Ampere (compute capability 8.0) and later


def has_tf32(capability: tuple[int, int] | None) -> bool | None:
    """Whether a GPU of this compute capability multiplies in TF32 (None: no GPU, unknown)."""
    return None if capability is None else tuple(capability) >= TF32_CAPABILITY


def math_mode(precision: str, device: str, tf32: dict, env: dict | None = None) -> str:
    """The mode a cell computes in: its precision, except fp32 on a GPU whose matmuls or
    convolutions run TF32 (the framework's read-back `tf32` state {"matmul", "conv", "hardware"}
    and the environment override decide). A pre-Ampere GPU ("hardware": False) computes fp32
    whatever the switches say: they exist, and read back on, on every CUDA build."""
    if precision != "fp32":
        return precision
    tf32_on = bool(tf32.get("matmul") or tf32.get("conv")) and tf32.get("hardware") is not False
    return "tf32" if device == "gpu" and tf32_on and not tf32_overridden(env) else "fp32"


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
    devices: int = 1  # data-parallel replicas; `batch` is per replica (global batch: devices x batch)


@dataclass
class Workload:
    step: Callable[[], Any]  # one training or inference step; returns something to wait on
    sync: Callable[[Sequence[Any]], None]  # block until the device finished (and the handles are ready)
    peak_memory: Callable[[], dict]  # {"peak_memory_bytes": ..., "memory_kind": ...}
    settings: dict = field(default_factory=dict)  # what the runner switched on (documented per cell)
    # called once after warm-up: the peak then covers the timed steps only (not autotuning trials)
    reset_peak_memory: Callable[[], None] = lambda: None
    # data parallel: rank 0's value on every replica (so all replicas agree on the steps per repeat)
    broadcast: Callable[[int], int] = lambda value: value


# Lower-cased pieces of the messages a framework raises when memory runs out: CUDA's and the
# allocators' "out of memory", XLA's RESOURCE_EXHAUSTED, Paddle's ResourceExhaustedError, and
# cuDNN / cuBLAS failing to allocate their workspace or handle (CUDNN_STATUS_ALLOC_FAILED,
# CUBLAS_STATUS_ALLOC_FAILED): the tests quote each real message.
OOM_MARKERS = ("out of memory", "outofmemory", "resource_exhausted", "resourceexhausted",
               "cannot allocate memory", "bad_alloc", "failed to allocate", "memoryerror",
               "cudnn_status_alloc_failed", "cublas_status_alloc_failed", "cuda_error_out_of_memory")


def looks_like_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or any(m in text for m in OOM_MARKERS)
