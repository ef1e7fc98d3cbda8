"""Each framework's benchmark runner on a GPU (skipped here: `@pytest.mark.gpu`, and per framework
when that framework sees no GPU, e.g. Paddle's CPU wheel beside a CUDA torch): inference and
training, eager and compiled, fp32 and bf16 at small size; memory after warm-up; TF32 set, read back
and effective in the numbers; the matmul probe in every math mode. `benchmarks/gpu_check.sh` runs
these on the first machine with a GPU."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest

from resnet_rosetta import frameworks
from resnet_rosetta.benchmarks.timing import measure
from resnet_rosetta.common.workload import WorkloadConfig

pytestmark = pytest.mark.gpu

SMALL = WorkloadConfig(arch="resnet18", impl="ours", mode="infer", batch=4, precision="fp32", execution="eager",
                       channels_last=False, size=64, device="gpu")
RESNET18_PARAM_BYTES = 11_689_512 * 4  # fp32 weights: every device figure holds at least these
# (mode, exec, precision): each of the six values twice over four cases
CASES = [("infer", "eager", "fp32"), ("train", "eager", "bf16"), ("infer", "compiled", "bf16"),
         ("train", "compiled", "fp32")]


@pytest.fixture
def gpu_runner(framework: str) -> ModuleType:
    runner = frameworks.load(framework, "bench")
    if not runner.gpu_count():
        pytest.skip(f"{framework} sees no GPU")
    return runner


def _numpy(out) -> np.ndarray:
    """A step's output (logits or loss) as float32 NumPy, from any of the three frameworks."""
    if hasattr(out, "detach"):  # torch
        return out.detach().float().cpu().numpy()
    if type(out).__module__.startswith("paddle"):
        return out.astype("float32").numpy()
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("mode, execution, precision", CASES)
def test_gpu_step_runs_with_device_memory_and_tf32_read_back(gpu_runner, mode, execution, precision):
    wl = gpu_runner.build(dataclasses.replace(SMALL, mode=mode, execution=execution, precision=precision))
    t = measure(wl.step, wl.sync, warmup=1, iters=2, repeats=2, after_warmup=wl.reset_peak_memory)
    assert all(s > 0 for s in t.repeat_s)
    out = wl.step()
    wl.sync([out])
    assert np.isfinite(_numpy(out)).all()
    mem = wl.peak_memory()
    assert mem["memory_kind"].startswith("device")
    assert RESNET18_PARAM_BYTES <= mem["peak_memory_bytes"] < 8 * 2 ** 30  # weights at least; not a whole pool
    state = wl.settings["tf32"]
    assert isinstance(state["matmul"], bool) and isinstance(state["conv"], bool) and state["read"]


def test_gpu_tf32_off_policy_switches_every_framework_off(gpu_runner, monkeypatch):
    gpu_runner.set_tf32(True)
    monkeypatch.setenv("RESNET_ROSETTA_TF32", "off")
    wl = gpu_runner.build(SMALL)
    assert (wl.settings["tf32"]["matmul"], wl.settings["tf32"]["conv"]) == (False, False)
    assert (gpu_runner.tf32_state()["matmul"], gpu_runner.tf32_state()["conv"]) == (False, False)


CHILD = """
import json, sys
from resnet_rosetta import frameworks
from resnet_rosetta.benchmarks import probe
from resnet_rosetta.benchmarks.config import Cell
fw, what = sys.argv[1], sys.argv[2]
runner = frameworks.load(fw, "bench")
if what == "error":  # relative error of a 1024 fp32 matmul, TF32 off then on, against float64
    import numpy as np
    if fw == "torch":
        import torch
        cc = torch.cuda.get_device_capability()
        mm = lambda a, b: (torch.from_numpy(a).cuda() @ torch.from_numpy(b).cuda()).cpu().numpy()
    elif fw == "paddle":
        import paddle
        paddle.set_device("gpu:0")
        cc = paddle.device.cuda.get_device_capability()
        mm = lambda a, b: paddle.matmul(paddle.to_tensor(a), paddle.to_tensor(b)).numpy()
    else:
        import jax, jax.numpy as jnp
        dev = jax.devices("gpu")[0]
        cc = tuple(int(x) for x in str(dev.compute_capability).split("."))
        mm = lambda a, b: np.asarray(jax.jit(jnp.matmul)(jax.device_put(a, dev), jax.device_put(b, dev)))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1024, 1024), np.float32), rng.standard_normal((1024, 1024), np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    out = {"cc": list(cc)}
    for on in (False, True):
        runner.set_tf32(on)
        out[str(on)] = float(np.abs(mm(a, b) - exact).max() / np.abs(exact).max())
    print(json.dumps(out))
else:
    probe.PROBE_SIZES["gpu"] = ((4096, 8192), 1.0)  # enough to see the modes apart, within the check's time
    print(json.dumps(probe.matmul_peaks(runner, Cell(framework=fw, kind="peak", device="gpu", warmup=1, repeats=2,
                                                           repeat_s=0.2))))
"""


def _child(framework: str, what: str) -> dict:
    """Run CHILD in a fresh process without NVIDIA_TF32_OVERRIDE (conftest sets it for this one,
    and cuBLAS reads it once per process)."""
    env = {k: v for k, v in os.environ.items() if k != "NVIDIA_TF32_OVERRIDE"}
    done = subprocess.run([sys.executable, "-c", CHILD, framework, what], capture_output=True, text=True, env=env,
                          timeout=240, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gpu_tf32_switch_changes_the_numbers(gpu_runner, framework):
    errors = _child(framework, "error")
    if tuple(errors["cc"]) < (8, 0):
        pytest.skip("no TF32 before Ampere")
    assert errors["False"] < 1e-5  # strict fp32: about 1e-6 for n = 1024
    assert errors["True"] > 2.0 ** -14  # TF32 rounds the inputs to 10 mantissa bits


def test_gpu_probe_measures_each_math_mode(gpu_runner, framework):
    peaks = _child(framework, "probe")
    assert list(peaks) == ["fp32", "tf32", "bf16", "fp16"]
    assert peaks["fp32"]["tf32"]["matmul"] is False and peaks["tf32"]["tf32"]["matmul"] is True
    assert all(peaks[m]["gflop_s"] and peaks[m]["sizes_tried"] == [4096, 8192] for m in peaks), peaks
    assert peaks["tf32"]["gflop_s"] > 0.9 * peaks["fp32"]["gflop_s"]  # never slower than strict fp32
    assert peaks["bf16"]["gflop_s"] > 1.5 * peaks["fp32"]["gflop_s"]  # tensor cores: at least twice on Ampere+
    assert peaks["fp32"]["host_noise"]["spread"] < 0.5


def test_gpu_info_names_the_device_and_its_cuda(gpu_runner):
    info = gpu_runner.info("gpu")
    assert info["device_name"] not in ("", "cpu") and info["tf32"]["read"]
    assert info.get("cuda") or info.get("platform_version")
