"""Paddle benchmark runner: our `model.ResNet` or paddle.vision's, at its best (the contract:
common/workload.py).

- eager: dygraph; compiled: `paddle.jit.to_static(model, full_graph=True, backend=None)` (the
  AST-transcribed static program; CINN is not used because the CPU wheel lacks it).
- CPU: oneDNN kernels on (`FLAGS_use_onednn`), faster than Paddle's native CPU kernels for ResNet
  (docs/benchmarks.md); set `RESNET_ROSETTA_PADDLE_ONEDNN=0` to compare.
- bf16: `paddle.amp.auto_cast(dtype="bfloat16", level="O1")` (weights stay fp32).
- train step: forward, cross-entropy, backward, Momentum(0.9).step(), clear_grad().
- GPU: cuDNN exhaustive algorithm search with a 4 GiB workspace (`GPU_FLAGS`); TF32 through
  `paddle.base.core.set_cublas_switch` / `set_cudnn_switch` (off under `--tf32 off`), read back
  into every row (`tf32_state`); the allocator's peak reset after warm-up.
- sync: `paddle.device.synchronize()` on GPU; CPU dygraph ops return when done.
Imports paddle only.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Sequence

import paddle

from resnet_rosetta.common.errors import Unsupported, first_line
from resnet_rosetta.common.host import peak_rss_bytes
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.workload import (MatmulMaker, Workload, WorkloadConfig, apply_tf32_policy, has_tf32,
                                             looks_like_oom)
from . import parallel
from .model import ResNet


def _set_device(device: str) -> str:
    if device == "gpu":
        if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
            raise Unsupported("paddle sees no CUDA device (CPU-only wheel or no GPU)")
        # gpu:0 alone; a replica of `bench --devices N` the GPU its launcher gave it (FLAGS_selected_gpus)
        paddle.set_device(f"gpu:{paddle.distributed.ParallelEnv().device_id}")
        return "gpu"
    paddle.set_device("cpu")
    return "cpu"


def setup_threads(threads: int) -> None:
    core = getattr(getattr(paddle, "base", None), "core", None)
    if core is not None and hasattr(core, "set_num_threads"):
        core.set_num_threads(threads)


def gpu_count() -> int:
    return paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0


def gpu_sight() -> dict:
    """What Paddle sees of CUDA (frameworks/devices.py): GPU count, CUDA build (PyPI's `paddlepaddle`
    is CPU-only), and Paddle's own reason when a CUDA build cannot use a device (a tensor is placed
    on GPU 0, which fails on a missing or too old driver)."""
    if not paddle.is_compiled_with_cuda():
        return {"count": 0, "build": None}
    build = f"CUDA {paddle.version.cuda()}"
    try:
        n = paddle.device.cuda.device_count()
        if n == 0:
            return {"count": 0, "build": build, "error": "paddle.device.cuda.device_count() is 0"}
        paddle.to_tensor([1.0], place=paddle.CUDAPlace(0)).numpy()
        return {"count": n, "build": build, "name": paddle.device.cuda.get_device_name(0)}
    except Exception as exc:  # noqa: BLE001 - every CUDA failure is a reason to report, not a crash
        return {"count": 0, "build": build, "error": first_line(exc)}


def _onednn_wanted() -> bool:
    return os.environ.get("RESNET_ROSETTA_PADDLE_ONEDNN", "1") != "0"


def _set_onednn(on: bool) -> None:
    for flag in ("FLAGS_use_onednn", "FLAGS_use_mkldnn"):
        try:
            paddle.set_flags({flag: on})
            return
        except (ValueError, KeyError, RuntimeError):
            continue


# cuDNN autotuning, like torch's cudnn.benchmark: try every algorithm once per shape, with room to run them
GPU_FLAGS = {"FLAGS_cudnn_exhaustive_search": True, "FLAGS_conv_workspace_size_limit": 4096,  # MiB
             "FLAGS_cudnn_batchnorm_spatial_persistent": True}


def _core():
    return paddle.base.core


def tf32_state() -> dict:
    """TF32 as Paddle reports it: {"matmul": cuBLAS switch, "conv": cuDNN switch, "read"}, and
    "hardware": whether GPU 0 has TF32 (compute capability >= 8.0; None without a GPU)."""
    core = _core()
    mm, conv = bool(core.get_cublas_switch()), bool(core.get_cudnn_switch())
    hw = has_tf32(paddle.device.cuda.get_device_capability(0) if gpu_count() else None)
    return {"matmul": mm, "conv": conv, "hardware": hw, "read": f"get_cublas_switch()={mm}, get_cudnn_switch()={conv}"}


def set_tf32(on: bool) -> None:
    """TF32 on or off for cuBLAS matmuls and cuDNN convolutions alike."""
    core = _core()
    core.set_cublas_switch(on)
    core.set_cudnn_switch(on)


def set_gpu_flags() -> dict:
    """GPU_FLAGS one by one: {flag: value set, or why this build refused it} (the CPU wheel has none)."""
    done: dict = {}
    for flag, value in GPU_FLAGS.items():
        try:
            paddle.set_flags({flag: value})
            done[flag] = value
        except (ValueError, KeyError, RuntimeError) as exc:
            done[flag] = f"not set: {exc}"[:120]
    return done


def _gpu_settings() -> dict:
    """Autotuning flags and the TF32 policy on a GPU; what was set, for the row."""
    flags = set_gpu_flags()
    apply_tf32_policy(set_tf32)
    return {**flags, "tf32": tf32_state()}


def info(device: str) -> dict:
    d = {"framework_version": paddle.__version__, "compiled_with_cuda": paddle.is_compiled_with_cuda(),
         "bf16_supported": _bf16_supported()}
    if device == "gpu" and gpu_count():
        apply_tf32_policy(set_tf32)
        d.update(device_name=paddle.device.cuda.get_device_name(0), cuda=paddle.version.cuda(),
                 cudnn=paddle.version.cudnn(), tf32=tf32_state(),
                 tf32_override=os.environ.get("NVIDIA_TF32_OVERRIDE"))
    else:
        d["device_name"] = "cpu"
    return d


def _bf16_supported() -> bool | None:
    try:
        return bool(paddle.amp.is_bfloat16_supported())
    except Exception:  # noqa: BLE001 - API differs across versions
        return None


def _check_bf16_amp() -> None:
    """Paddle's AMP silently runs fp32 where it thinks bf16 is unsupported (CPUs without
    AVX512-BF16 / AMX): refuse to label such a run bf16."""
    conv = paddle.nn.Conv2D(3, 4, 3)
    with paddle.no_grad(), paddle.amp.auto_cast(enable=True, dtype="bfloat16", level="O1"):
        out_dtype = conv(paddle.randn([1, 3, 8, 8])).dtype
    if out_dtype != paddle.bfloat16:
        raise Unsupported(f"paddle.amp.auto_cast(dtype='bfloat16') computes {out_dtype} here "
                          f"(paddle.amp.is_bfloat16_supported() = {_bf16_supported()}): no bf16 path on this device")


def _sync_for(device: str):
    if device == "gpu":
        def sync(handles: Sequence[Any]) -> None:
            paddle.device.synchronize()
    else:
        def sync(handles: Sequence[Any]) -> None:
            pass
    return sync


def _peak_memory_for(device: str):
    """(peak(), reset()): the GPU allocator's peak since reset, or the process's peak RSS on CPU."""
    if device == "gpu":
        return (lambda: {"peak_memory_bytes": int(paddle.device.cuda.max_memory_allocated()),
                         "memory_kind": "device (allocated, after warm-up)"}), paddle.device.cuda.reset_max_memory_allocated
    return (lambda: {"peak_memory_bytes": peak_rss_bytes(), "memory_kind": "process peak RSS"}), lambda: None


def build_model(cell: WorkloadConfig) -> paddle.nn.Layer:
    spec = get_spec(cell.arch)
    if cell.impl == "reference":
        if cell.channels_last:
            raise Unsupported("paddle.vision's ResNet has no data_format: NCHW only")
        import paddle.vision.models as zoo
        return getattr(zoo, cell.arch)(num_classes=spec.num_classes)
    return ResNet(spec, data_format="NHWC" if cell.channels_last else "NCHW")


def build(cell: WorkloadConfig) -> Workload:
    device = _set_device(cell.device)
    compiled = cell.execution == "compiled"
    settings: dict = {}
    if device == "cpu":
        # oneDNN for dygraph; off under to_static, whose full-graph programs fail with it on CPU
        # (Paddle 3.3: "dst_tensor shall be defined" in run_program, even for paddle.vision models).
        on = _onednn_wanted() and not compiled
        _set_onednn(on)
        settings["onednn"] = on
    else:
        settings.update(_gpu_settings())
    spec = get_spec(cell.arch)
    hw = [cell.size, cell.size]
    x = paddle.randn([cell.batch, *hw, spec.in_channels] if cell.channels_last else [cell.batch, spec.in_channels, *hw],
                     dtype="float32")
    y = paddle.randint(0, spec.num_classes, [cell.batch], dtype="int64")
    if cell.precision == "bf16":
        _check_bf16_amp()
        settings["amp"] = "auto_cast bfloat16 O1"

        def amp():
            return paddle.amp.auto_cast(enable=True, dtype="bfloat16", level="O1")
    else:
        amp = contextlib.nullcontext
    peak_memory, reset_peak = _peak_memory_for(device)
    train = cell.mode == "train"

    def make(full_graph: bool | None) -> dict:
        """A fresh model (+ optimizer), to_static'd when full_graph is not None."""
        paddle.seed(0)
        model = build_model(cell)
        model.train() if train else model.eval()
        parts = {"model": model, "fn": model}
        if train:
            parts["opt"] = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9,
                                                     parameters=model.parameters())
        if train and cell.devices > 1:  # one replica of `bench --devices N`: DataParallel, in its group
            if full_graph is not None:
                raise Unsupported("bench --devices > 1 measures Paddle's DataParallel in dygraph (--exec eager) only")
            parts["fn"] = parallel.bench_wrap(model)
            settings["data_parallel"] = {"engine": "paddle.DataParallel (defaults)",
                                         "batch_norm": "local (each replica its own batch)"}
        if full_graph is not None:
            parts["fn"] = paddle.jit.to_static(model, full_graph=full_graph, backend=None)
            settings["to_static"] = f"full_graph={full_graph}, backend=None"
        return parts

    state = make(True if compiled else None)

    def run_once() -> Any:
        if not train:
            with paddle.no_grad(), amp():
                return state["fn"](x)
        with amp():
            loss = paddle.nn.functional.cross_entropy(state["fn"](x), y)
        loss.backward()
        state["opt"].step()
        state["opt"].clear_grad(set_to_zero=False)
        return loss

    def step() -> Any:
        try:
            return run_once()
        except Exception as exc:  # noqa: BLE001
            # A model that full-graph to_static cannot transcribe falls back to SOT (graph breaks
            # run eagerly), Paddle's own default; the reason is recorded with the result.
            if not (compiled and settings.get("to_static", "").startswith("full_graph=True")) or looks_like_oom(exc):
                raise
            reason = (str(exc).strip().splitlines() or [""])[-1][:200]
            state.clear()
            state.update(make(False))
            settings["to_static_fallback"] = f"full_graph=True failed: {reason or type(exc).__name__}"
            return run_once()

    if train and cell.devices > 1:
        return Workload(step=step, sync=lambda handles: parallel.bench_barrier(device), peak_memory=peak_memory,
                        settings=settings, reset_peak_memory=reset_peak, broadcast=parallel.bench_broadcast)
    return Workload(step=step, sync=_sync_for(device), peak_memory=peak_memory, settings=settings,
                    reset_peak_memory=reset_peak)


def matmul_maker(device: str, mode: str) -> MatmulMaker:
    """make(n) -> f; f(reps) runs reps n x n x n matmuls in math mode `mode` and synchronises once.
    fp32 and tf32 set the cuBLAS TF32 switch explicitly (strict and TF32)."""
    device = _set_device(device)
    if device == "cpu":
        _set_onednn(_onednn_wanted())
    dtype = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}[mode]
    if mode in ("fp32", "tf32"):
        set_tf32(mode == "tf32")
    sync = _sync_for(device)

    def make(n: int):
        a = paddle.randn([n, n]).astype(dtype)
        b = paddle.randn([n, n]).astype(dtype)

        def f(reps: int) -> None:
            for _ in range(reps):
                paddle.matmul(a, b)
            sync(())
        return f
    return make
