"""TF32 defaults on GPUs (`resnet-rosetta explain tf32`): every fact of guide/topics.py's 'tf32' topic, proved on
the frameworks as installed (the GPU facts by `gpu` tests, skipped without a CUDA device)."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from typing import Any

import jax
import paddle
import pytest
import torch

from resnet_rosetta.frameworks import FRAMEWORKS, load

CLAIMS = {"torch_fp32_precision": ["none", "tf32", "raised"],  # matmul default, conv default, mixing APIs
          "torch_tf32": {"matmul": False, "conv": True},  # allow_tf32 in a fresh process
          "jax_matmul_precision": None,
          # Paddle's (cublas, cudnn) switches in a fresh process: this CPU wheel, and a GPU build
          "paddle_switches": {"cpu_wheel": [False, True], "gpu_build": [True, True]},
          "full_fp32": {"torch_allow_tf32": False, "jax_matmul_precision": "highest", "paddle_switches": False,
                        "NVIDIA_TF32_OVERRIDE": "0"}}
FP32_PRECISION_SCRIPT = """
import torch
defaults = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
torch.backends.cuda.matmul.allow_tf32 = False  # the legacy API, as this repository uses
torch.backends.cuda.matmul.fp32_precision = "tf32"  # then the new one
try:
    torch.backends.cuda.matmul.allow_tf32
    mixed = "read"
except RuntimeError:
    mixed = "raised"
print(defaults[0], defaults[1], mixed)
"""


def test_tf32_defaults(fresh_defaults: dict[str, Any]) -> None:
    """The switches as a fresh process sees them (conftest.py); Paddle's GPU-build defaults are checked by
    test_tf32_defaults_on_gpu."""
    assert fresh_defaults["torch_matmul_tf32"] is CLAIMS["torch_tf32"]["matmul"]
    assert fresh_defaults["torch_cudnn_tf32"] is CLAIMS["torch_tf32"]["conv"]
    assert fresh_defaults["jax_matmul_precision"] == CLAIMS["jax_matmul_precision"]
    build = "gpu_build" if paddle.is_compiled_with_cuda() else "cpu_wheel"
    switches = [fresh_defaults["paddle_cublas_switch"], fresh_defaults["paddle_cudnn_switch"]]
    assert switches == CLAIMS["paddle_switches"][build]


@pytest.mark.gpu
def test_tf32_defaults_on_gpu() -> None:
    if not paddle.is_compiled_with_cuda():
        pytest.skip("Paddle's GPU defaults need a GPU build")
    done = subprocess.run([sys.executable, "-c", "import paddle.base.core as c; "
                           "print(c.get_cublas_switch(), c.get_cudnn_switch())"],
                          capture_output=True, text=True, check=True, env={**os.environ, "NVIDIA_TF32_OVERRIDE": ""})
    assert done.stdout.split()[-2:] == [str(v) for v in CLAIMS["paddle_switches"]["gpu_build"]]
    a = torch.randn(256, 256, device="cuda")
    exact = (a.double() @ a.double()).float()
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        tf32_error = ((a @ a) - exact).abs().max() / exact.abs().max()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    assert tf32_error > 2.0 ** -14  # well above float32's 6e-8: rounded to 10 stored mantissa bits


@functools.cache  # one process per session: test_flipped_claims.py calls the test again
def _fp32_precision_in_a_fresh_process() -> list[str]:
    done = subprocess.run([sys.executable, "-c", FP32_PRECISION_SCRIPT], capture_output=True, text=True, check=True)
    return done.stdout.split()[-3:]


def test_torch_fp32_precision_api() -> None:
    """In a fresh process: the torch 2.9+ defaults, and reading the legacy flag after using both APIs raises."""
    assert _fp32_precision_in_a_fresh_process() == CLAIMS["torch_fp32_precision"]


def test_full_fp32_precision_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    saved_torch = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    saved_jax = jax.config.jax_default_matmul_precision
    core = paddle.base.core
    saved_paddle = core.get_cublas_switch(), core.get_cudnn_switch()
    core.set_cublas_switch(True)
    core.set_cudnn_switch(True)
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    try:
        for framework in FRAMEWORKS:
            load(framework, "demos").full_fp32_precision()
        full = CLAIMS["full_fp32"]
        assert torch.backends.cuda.matmul.allow_tf32 is full["torch_allow_tf32"]
        assert torch.backends.cudnn.allow_tf32 is full["torch_allow_tf32"]
        assert jax.config.jax_default_matmul_precision == full["jax_matmul_precision"]
        assert [core.get_cublas_switch(), core.get_cudnn_switch()] == [full["paddle_switches"]] * 2
        assert os.environ["NVIDIA_TF32_OVERRIDE"] == full["NVIDIA_TF32_OVERRIDE"]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_torch
        jax.config.update("jax_default_matmul_precision", saved_jax)
        core.set_cublas_switch(saved_paddle[0])
        core.set_cudnn_switch(saved_paddle[1])
