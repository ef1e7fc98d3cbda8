"""PyTorch benchmark runner: our `model.ResNet` or torchvision's, at its best (the contract:
common/workload.py).

- eager: plain modules; compiled: `torch.compile` (inductor). On CPU, compiled inference also sets
  inductor's `freezing` (weights folded as constants, oneDNN weight prepacking), the documented
  CPU-inference recipe.
- bf16: `torch.autocast(device, torch.bfloat16)` around the forward (and loss); weights stay fp32.
- channels_last: model and input in `torch.channels_last` (opt-in, `--channels-last`).
- GPU: `cudnn.benchmark = True` (cuDNN autotuning); TF32 at PyTorch's defaults (matmul strict, cuDNN
  conv TF32) or off everywhere under `--tf32 off`, set through `allow_tf32` and read back from the
  `fp32_precision` settings (torch >= 2.9; `allow_tf32` before) into every row (`tf32_state`).
- memory: the CUDA allocator's peak, reset after warm-up (cuDNN's algorithm trials excluded).
- train step: zero_grad, forward, cross-entropy, backward, SGD(momentum=0.9).step().
- sync: `torch.cuda.synchronize()` on GPU; CPU kernels return when done.
Imports torch only (and torchvision for the reference rows).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Sequence

import torch

from resnet_rosetta.common.errors import Unsupported, first_line
from resnet_rosetta.common.host import peak_rss_bytes
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.workload import MatmulMaker, Workload, WorkloadConfig, apply_tf32_policy, has_tf32
from . import parallel
from .model import ResNet


def _device(device: str) -> torch.device:
    if device == "gpu":
        if not torch.cuda.is_available():
            raise Unsupported("torch sees no CUDA device (torch.cuda.is_available() is False)")
        return torch.device("cuda")
    return torch.device("cpu")


def setup_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set
        pass


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_sight() -> dict:
    """What torch sees of CUDA (frameworks/devices.py): GPU count, CUDA build, and for a CUDA build
    that sees none, torch's own reason (`torch.cuda.init()` names a missing or too old driver)."""
    if torch.version.cuda is None:
        return {"count": 0, "build": None}
    build = f"CUDA {torch.version.cuda}"
    try:
        torch.cuda.init()
        n = torch.cuda.device_count()
        return {"count": n, "build": build, "name": torch.cuda.get_device_name(0) if n else ""}
    except Exception as exc:  # noqa: BLE001 - every CUDA failure is a reason to report, not a crash
        return {"count": 0, "build": build, "error": first_line(exc)}


def _fp32_precision(*path: str) -> str:
    """The first explicit `fp32_precision` along torch's chain (e.g. cudnn.conv -> cudnn -> global)."""
    chain = [torch.backends]
    for name in path:
        chain.append(getattr(chain[-1], name))
    for obj in reversed(chain):
        value = getattr(obj, "fp32_precision", "none")
        if value != "none":
            return value
    return "ieee"


def tf32_state() -> dict:
    """TF32 as torch reports it now: {"matmul", "conv"} booleans, what was read, and whether the GPU
    has TF32 at all ("hardware": compute capability >= 8.0; None without a GPU)."""
    hw = has_tf32(torch.cuda.get_device_capability() if torch.cuda.is_available() else None)
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        mm, conv = _fp32_precision("cuda", "matmul"), _fp32_precision("cudnn", "conv")
        return {"matmul": mm == "tf32", "conv": conv == "tf32", "hardware": hw,
                "read": f"cuda.matmul.fp32_precision={mm}, cudnn.conv.fp32_precision={conv}"}
    mm, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    return {"matmul": mm, "conv": conv, "hardware": hw,
            "read": f"cuda.matmul.allow_tf32={mm}, cudnn.allow_tf32={conv}"}


def set_tf32(on: bool) -> None:
    """TF32 on or off for cuBLAS matmuls and cuDNN convolutions alike, through `allow_tf32` (the
    repository's API: once both were set, torch refuses to read `allow_tf32`); `tf32_state` reads
    the `fp32_precision` settings it updates."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def info(device: str) -> dict:
    import torchvision
    d = {"framework_version": torch.__version__, "torchvision_version": torchvision.__version__,
         "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
         "mkldnn": torch.backends.mkldnn.is_available()}
    if device == "gpu" and torch.cuda.is_available():
        apply_tf32_policy(set_tf32)
        d.update(device_name=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                 cudnn=torch.backends.cudnn.version(), tf32=tf32_state(),
                 tf32_override=os.environ.get("NVIDIA_TF32_OVERRIDE"))
    else:
        d["device_name"] = "cpu"
    return d


def _sync_for(dev: torch.device):
    if dev.type == "cuda":
        def sync(handles: Sequence[Any]) -> None:
            torch.cuda.synchronize()
    else:
        def sync(handles: Sequence[Any]) -> None:
            pass  # CPU ops (eager and inductor) return after the work is done
    return sync


def _peak_memory_for(dev: torch.device):
    """(peak(), reset()): the CUDA allocator's peak since reset, or the process's peak RSS on CPU."""
    if dev.type == "cuda":
        return (lambda: {"peak_memory_bytes": torch.cuda.max_memory_allocated(),
                         "memory_kind": "device (allocated, after warm-up)"}), torch.cuda.reset_peak_memory_stats
    return (lambda: {"peak_memory_bytes": peak_rss_bytes(), "memory_kind": "process peak RSS"}), lambda: None


def build_model(cell: WorkloadConfig) -> torch.nn.Module:
    spec = get_spec(cell.arch)
    if cell.impl == "reference":
        import torchvision
        return getattr(torchvision.models, cell.arch)(weights=None, num_classes=spec.num_classes)
    return ResNet(spec)


def build(cell: WorkloadConfig) -> Workload:
    dev = _device(cell.device)
    torch.manual_seed(0)
    settings: dict = {}
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        settings["cudnn_benchmark"] = True
        apply_tf32_policy(set_tf32)
        settings["tf32"] = tf32_state()
    model = build_model(cell).to(dev)
    spec = get_spec(cell.arch)
    x = torch.randn(cell.batch, spec.in_channels, cell.size, cell.size, device=dev)
    y = torch.randint(0, spec.num_classes, (cell.batch,), device=dev)
    if cell.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if cell.precision == "bf16":
        settings["autocast"] = "bfloat16"

        def amp():
            return torch.autocast(dev.type, dtype=torch.bfloat16)
    else:
        amp = contextlib.nullcontext
    peak_memory, reset_peak = _peak_memory_for(dev)

    if cell.mode == "infer":
        model.eval()
        fn = model
        if cell.execution == "compiled":
            if dev.type == "cpu":
                import torch._inductor.config as inductor_config
                inductor_config.freezing = True
                settings["inductor_freezing"] = True
            fn = torch.compile(model)

        def step() -> Any:
            with torch.inference_mode(), amp():
                return fn(x)
    else:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        if cell.devices > 1:  # one replica of `bench --devices N`: DDP, in its process group
            model = parallel.bench_wrap(model, dev)
            settings["data_parallel"] = {"engine": "torch.nn.parallel.DistributedDataParallel (defaults)",
                                         "batch_norm": "local (each replica its own batch)"}
        fn = torch.compile(model) if cell.execution == "compiled" else model

        def step() -> Any:
            opt.zero_grad(set_to_none=True)
            with amp():
                loss = loss_fn(fn(x), y)
            loss.backward()
            opt.step()
            return loss

    if cell.devices > 1:
        return Workload(step=step, sync=lambda handles: parallel.bench_barrier(dev), peak_memory=peak_memory,
                        settings=settings, reset_peak_memory=reset_peak,
                        broadcast=lambda value: parallel.bench_broadcast(value, dev))
    return Workload(step=step, sync=_sync_for(dev), peak_memory=peak_memory, settings=settings,
                    reset_peak_memory=reset_peak)


def matmul_maker(device: str, mode: str) -> MatmulMaker:
    """make(n) -> f; f(reps) runs reps n x n x n matmuls in math mode `mode` and synchronises once.
    fp32 and tf32 set the TF32 switches explicitly (strict and TF32)."""
    dev = _device(device)
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    if mode in ("fp32", "tf32"):
        set_tf32(mode == "tf32")
    sync = _sync_for(dev)

    def make(n: int):
        a = torch.randn(n, n, device=dev).to(dtype)
        b = torch.randn(n, n, device=dev).to(dtype)
        out = torch.empty(n, n, device=dev, dtype=dtype)

        def f(reps: int) -> None:
            for _ in range(reps):
                torch.mm(a, b, out=out)
            sync(())
        return f
    return make
