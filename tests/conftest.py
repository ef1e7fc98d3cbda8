"""Shared fixtures: seeded inputs and the framework list. Tolerances come from common/tolerance.py."""
from __future__ import annotations

import os

# Parity tests compare fp32 results across frameworks: keep TF32 out even on a GPU machine.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
# Three frameworks share one GPU in a test process: JAX must not take 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from resnet_rosetta.frameworks import FRAMEWORKS  # noqa: E402


@pytest.hookimpl(trylast=True)  # after tests/guide/conftest.py has put the guide's tests in one group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests skip cleanly on machines without CUDA: no NVIDIA device node and torch sees none (a
    GPU that only Paddle or JAX can use still runs their tests, which skip per framework).

    The long tests go first (`slow`, and the guide's group, which one worker runs as a whole): two
    workers that start with them end together on the short ones instead of one waiting on the other."""
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    has_gpu = has_gpu or os.path.exists("/dev/nvidiactl")
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if item.get_closest_marker("gpu") is not None:  # not keywords: a "gpu" param id is no marker
                item.add_marker(skip)
    items.sort(key=lambda item: not (item.get_closest_marker("slow") or item.get_closest_marker("xdist_group")))


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return request.param



@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
