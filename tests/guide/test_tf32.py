"""TF32 defaults on GPUs (`resnet-rosetta explain tf32`): every fact of guide/topics.py's 'tf32' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import inspect
import os
from typing import Any

import jax
import paddle
import pytest
import torch

from resnet_rosetta.frameworks import FRAMEWORKS, load

from guide_helpers import paddle_flag


def test_tf32_defaults(fresh_defaults: dict[str, Any]) -> None:
    assert fresh_defaults["torch_matmul_tf32"] is False and fresh_defaults["torch_cudnn_tf32"] is True
    assert fresh_defaults["jax_matmul_precision"] is None
    assert "NVIDIA_TF32_OVERRIDE" in inspect.getsource(paddle.optimizer.lbfgs.check_tf32_override)
    if not paddle.is_compiled_with_cuda():
        assert paddle_flag("FLAGS_allow_tf32_cublas") == "absent" and paddle_flag("FLAGS_allow_tf32_cudnn") == "absent"


def test_full_fp32_precision_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    saved_torch = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    saved_jax = jax.config.jax_default_matmul_precision
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    try:
        for framework in FRAMEWORKS:
            load(framework, "demos").full_fp32_precision()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert jax.config.jax_default_matmul_precision == "highest"
        assert os.environ["NVIDIA_TF32_OVERRIDE"] == "0"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_torch
        jax.config.update("jax_default_matmul_precision", saved_jax)
