"""Peaks per math mode and what uses them, without a framework or a GPU: each cell is divided by the
peak of the mode it ran in (so a TF32 cell on a GPU is never divided by the strict fp32 peak), the
probe grows n to 16384 on a GPU and synchronises once per batch of calls, TF32 policy and
read-back decide a cell's mode, and out-of-memory failures are recognised from the real messages."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from resnet_rosetta.benchmarks import probe, report_index, results
from resnet_rosetta.benchmarks.config import Cell
from resnet_rosetta.benchmarks.presets import build_plan, presets_for
from resnet_rosetta.common.workload import apply_tf32_policy, has_tf32, looks_like_oom, math_mode, tf32_policy
from bench_records import make_record

TF32_ON = {"matmul": False, "conv": True}  # torch's GPU default: strict matmul, TF32 convolutions
TF32_OFF = {"matmul": False, "conv": False}


@pytest.mark.parametrize("precision, device, tf32, env, expected", [
    ("fp32", "gpu", TF32_ON, {}, "tf32"),
    ("fp32", "gpu", {"matmul": True, "conv": False}, {}, "tf32"),
    ("fp32", "gpu", TF32_OFF, {}, "fp32"),
    ("fp32", "gpu", TF32_ON, {"NVIDIA_TF32_OVERRIDE": "0"}, "fp32"),  # the override beats the switches
    ("fp32", "cpu", TF32_ON, {}, "fp32"),  # no TF32 on a CPU whatever the switches say
    ("bf16", "gpu", TF32_ON, {}, "bf16"),
    ("fp32", "gpu", {**TF32_ON, "hardware": False}, {}, "fp32"),  # a V100 / T4: switches on, no TF32 units
    ("fp32", "gpu", {**TF32_ON, "hardware": True}, {}, "tf32"),
])
def test_math_mode_of_a_cell(precision, device, tf32, env, expected):
    assert math_mode(precision, device, tf32, env) == expected


def test_tf32_policy_follows_the_sweep_variable_and_the_override(monkeypatch):
    calls = []
    monkeypatch.setenv("RESNET_ROSETTA_TF32", "off")
    apply_tf32_policy(calls.append)  # what every runner does before reading its switches on a GPU
    monkeypatch.delenv("RESNET_ROSETTA_TF32")
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "1")
    apply_tf32_policy(calls.append)
    assert calls == [False]
    assert tf32_policy({}) == "default"
    assert tf32_policy({"RESNET_ROSETTA_TF32": "off"}) == "off"
    assert tf32_policy({"NVIDIA_TF32_OVERRIDE": "0"}) == "off"
    assert tf32_policy({"NVIDIA_TF32_OVERRIDE": "1"}) == "default"


def _gpu_peak(fw: str, **gflop_s: float) -> dict:
    c = Cell(framework=fw, kind="peak", device="gpu")
    return {"cell": c.to_dict(), "status": "ok", "env": {},
            "metrics": {"matmul_peak": {mode: {"gflop_s": g} for mode, g in gflop_s.items()}}}


def _gpu_cell(fw: str, img_s: float, mode: str) -> dict:
    rec = make_record(fw, "ours", img_s)
    rec["cell"]["device"] = "gpu"
    rec["metrics"]["math_mode"] = mode
    return rec


def test_each_cell_is_divided_by_the_peak_of_its_own_math_mode():
    # an H200-like machine: strict fp32 ~ 60 TFLOP/s, TF32 ~ 400, bf16 ~ 800; a TF32 resnet50 cell at
    # 120 TFLOP/s is 200% of the strict peak (the old mixing) but 30% of the TF32 one
    records = [_gpu_peak("torch", fp32=60e3, tf32=400e3, bf16=800e3, fp16=810e3), _gpu_peak("flax", fp32=55e3, tf32=420e3),
               _gpu_cell("torch", 120e3 / 8.2, "tf32"), _gpu_cell("paddle", 30e3 / 8.2, "fp32"),
               _gpu_cell("flax", 400e3 / 8.2, "bf16")]
    derived = results.derive(records)
    assert derived["peaks"]["tf32"]["gflop_s"] == 420e3 and derived["peaks"]["tf32"]["by"] == "flax"
    torch_m, paddle_m, flax_m = (r["metrics"] for r in records[2:])
    assert (torch_m["peak_mode"], torch_m["peak_fraction"]) == ("tf32", pytest.approx(120e3 / 420e3))
    assert (paddle_m["peak_mode"], paddle_m["peak_fraction"]) == ("fp32", pytest.approx(30e3 / 60e3))
    assert (flax_m["peak_mode"], flax_m["peak_fraction"]) == ("bf16", pytest.approx(0.5))
    assert all(m["peak_fraction"] < 1 for m in (torch_m, paddle_m, flax_m))
    assert "matmul_tf32_gflop_s" in results.to_csv(records).splitlines()[0]
    # the summary names the batch and the mode of the peak it divides by (no longer batch 16 only)
    rec = _gpu_cell("torch", 120e3 / 8.2, "tf32")
    rec["cell"]["batch"] = 256
    pair = [records[0], rec]
    derived = results.derive(pair)
    line = next(x for x in report_index.summary_lines(pair, derived, {"status": "skipped"}) if "resnet50 fp32" in x)
    assert "batch 256" in line and "tf32 matmul peak" in line


class FakeMatmul:
    """A device multiplying n x n matrices at `rate` FLOP/s: f(reps) queues reps calls and
    synchronises once; the clock advances only on a sync."""

    def __init__(self, rate: float) -> None:
        self.rate, self.now, self.syncs, self.calls, self.sizes = rate, 0.0, 0, 0, []

    def make(self, n: int):
        self.sizes.append(n)

        def f(reps: int) -> None:
            self.calls += reps
            self.syncs += 1
            self.now += reps * 2 * n ** 3 / self.rate
        return f

    def clock(self) -> float:
        return self.now


def test_probe_grows_to_16384_on_a_gpu_and_syncs_once_per_batch_of_calls():
    dev = FakeMatmul(rate=400e12)
    sizes, grow_until_s = probe.PROBE_SIZES["gpu"]
    peak = probe.matmul_peak(dev.make, sizes=sizes, grow_until_s=grow_until_s, clock=dev.clock)
    assert peak["sizes_tried"] == [2048, 4096, 8192, 16384] and peak["n"] >= 8192
    assert peak["gflop_s"] == pytest.approx(400e3)
    assert dev.syncs == 4 * (2 + 3)  # per size: allocate, time one call, three rounds of one batch each
    assert dev.calls > 10 * dev.syncs  # batches, not one synchronisation per call
    slow = FakeMatmul(rate=1e9)  # a slow dtype stops growing once a call takes 0.1 s
    assert probe.matmul_peak(slow.make, clock=slow.clock)["sizes_tried"] == [512]


def test_probe_measures_every_gpu_math_mode_with_the_tf32_switches_read_back(monkeypatch):
    calls = []
    state = {"matmul": None}

    def matmul_maker(device, mode):
        calls.append((device, mode))
        if mode in ("fp32", "tf32"):
            state["matmul"] = mode == "tf32"
        return FakeMatmul(rate={"fp32": 60e12, "tf32": 400e12, "bf16": 800e12, "fp16": 800e12}[mode]).make

    runner = SimpleNamespace(matmul_maker=matmul_maker, tf32_state=lambda: {**state, "read": "fake"})
    monkeypatch.setattr(probe, "PROBE_SIZES", {"gpu": ((64,), 1.0)})
    cell = Cell(framework="torch", kind="peak", device="gpu", warmup=0, repeats=1, repeat_s=0.001)
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    peaks = probe.matmul_peaks(runner, cell)
    assert [m for _, m in calls] == ["fp32", "tf32", "bf16", "fp16"]
    assert peaks["fp32"]["tf32"]["matmul"] is False and peaks["tf32"]["tf32"]["matmul"] is True
    assert "host_noise" in peaks["fp32"] and peaks["bf16"]["gflop_s"] > 0
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")  # TF32 forbidden: not probed, cells are strict fp32
    assert probe.probe_modes("gpu") == ("fp32", "bf16", "fp16") and probe.probe_modes("cpu") == ("fp32", "bf16")


def test_gpu_presets_use_large_batches_and_bf16_channels_last():
    assert presets_for("cpu").infer == 16 and presets_for("gpu").bf16 == 256
    fws = ["torch", "paddle", "flax"]
    default = build_plan("default", fws, threads=2, device="gpu")
    assert {c.batch for c in default.cells} == {64, 128, 256} and {c.device for c in default.cells} == {"gpu"}
    bf16 = [c for c in default.cells if c.precision == "bf16"]
    assert {(c.framework, c.batch, c.arch) for c in bf16} == {(fw, 256, "resnet50") for fw in fws}
    assert {c.framework: c.channels_last for c in bf16} == {"torch": True, "paddle": True, "flax": False}  # Flax: NHWC
    assert any("batch 256" in m for m in default.measures) and not any("batch 16" in m for m in default.measures)
    full = build_plan("full", fws, threads=2, device="gpu")
    assert {c.batch for c in full.cells} == {64, 128, 256}


@pytest.mark.parametrize("message", [
    # torch (PyTorch issues: pytorch/pytorch#20123, KupynOrest/DeblurGAN#128, QwenLM/Qwen3#873)
    "RuntimeError: cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 139.8 GiB",
    # Paddle (PaddlePaddle/Paddle#42228), and its cuDNN handle failing
    "RuntimeError: ResourceExhaustedError:\n\nOut of memory error on GPU 0. Cannot allocate 98.000244MB memory on GPU 0, "
    "6.000000GB memory has been allocated and available memory is only 0.000000B.",
    "ExternalError: CUDNN error(4), CUDNN_STATUS_ALLOC_FAILED.",
    # JAX / XLA
    "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1073741824 bytes.",
])
def test_gpu_allocation_failures_are_oom(message):
    assert looks_like_oom(RuntimeError(message))


@pytest.mark.parametrize("message", [
    "RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input.",
    "RuntimeError: CUDA error: an illegal memory access was encountered",
    "RuntimeError: cuDNN error: CUDNN_STATUS_EXECUTION_FAILED",
])
def test_other_gpu_failures_are_not_oom(message):
    assert not looks_like_oom(RuntimeError(message))


@pytest.mark.parametrize("capability, expected", [(None, None), ((7, 0), False), ((7, 5), False), ((8, 0), True),
                                                  ((9, 0), True)])
def test_tf32_hardware_is_ampere_and_later(capability, expected):
    assert has_tf32(capability) is expected


def test_torch_reads_the_gpus_tf32_hardware(monkeypatch):
    import torch

    from resnet_rosetta.frameworks.torch import bench

    assert bench.tf32_state()["hardware"] is None  # this machine: no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, expected in (((7, 0), False), ((8, 6), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        state = bench.tf32_state()
        assert state["hardware"] is expected
        assert math_mode("fp32", "gpu", state, {}) == ("tf32" if expected and (state["matmul"] or state["conv"])
                                                       else "fp32")
