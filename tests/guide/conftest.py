"""Fixtures of the guide's tests, one per session as when they were one module: the tiny bench (its
oracle answers and adapters are computed once) and the switches a fresh process sees."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from resnet_rosetta.guide.pitfalls import Bench

DEFAULTS_SCRIPT = """
import json, torch, jax
print(json.dumps({
    "torch_matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
    "torch_cudnn_tf32": torch.backends.cudnn.allow_tf32,
    "torch_deterministic": torch.are_deterministic_algorithms_enabled(),
    "torch_cudnn_benchmark": torch.backends.cudnn.benchmark,
    "jax_matmul_precision": jax.config.jax_default_matmul_precision,
}))
"""


@pytest.fixture(scope="session")
def bench() -> Bench:
    return Bench()


@pytest.fixture(scope="session")
def fresh_defaults() -> dict[str, Any]:
    """torch's and JAX's switches as a fresh process sees them (other tests may have flipped them here)."""
    done = subprocess.run([sys.executable, "-c", DEFAULTS_SCRIPT], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
