"""Fixtures of the guide's tests, one per session as when they were one module: the tiny bench (its
oracle answers and adapters are computed once), the compiled models' runs and the switches a fresh
process sees. One per session also lets test_flipped_claims.py rerun a test without measuring again."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch

from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.replicas import ReplicaCase
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.guide.pitfalls import TINY, Bench
from resnet_rosetta.parity import dataparallel, engine

@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), every guide test runs on one worker: the session
    fixtures below are measured once, not once per worker (tests/guide/test_one_worker.py)."""
    for item in items:
        if "tests/guide/" in item.nodeid or item.nodeid.startswith("guide/"):
            item.add_marker(pytest.mark.xdist_group("guide"))


DEFAULTS_SCRIPT = """
import json, torch, jax, paddle.base.core as core
print(json.dumps({
    "paddle_cublas_switch": core.get_cublas_switch(),
    "paddle_cudnn_switch": core.get_cudnn_switch(),
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


@pytest.fixture(scope="session")
def compiled_runs(bench: Bench) -> dict[str, dict[str, Any]]:
    """Each framework's compiled tiny model called at batch 4, 4, 2, 3: times, compile counts, logits."""
    return {fw: _compiled_runs(fw, bench) for fw in FRAMEWORKS}


def _compiled_runs(framework: str, bench: Bench) -> dict[str, Any]:
    """Compile the tiny model, call it at batch 4 twice, then at batches 2 and 3; count compilations."""
    x4 = bench.x
    if framework == "torch":
        graphs: list[object] = []

        def counting_backend(gm: torch.fx.GraphModule, example_inputs: list) -> Any:
            graphs.append(gm)
            return gm.forward

        model = load("torch").Adapter(TINY, bench.weights).model
        fn = torch_demos.compile_model(model, backend=counting_backend)
        call = lambda x: fn(torch.from_numpy(x)).detach().numpy()  # noqa: E731
        count = lambda: len(graphs)  # noqa: E731
    elif framework == "paddle":
        fn = paddle_demos.compile_model(load("paddle").Adapter(TINY, bench.weights).model)
        call = lambda x: fn(paddle.to_tensor(x)).numpy()  # noqa: E731
        count = lambda: len(fn.forward.program_cache)  # noqa: E731
    else:
        adapter = load("flax").Adapter(TINY, bench.weights)
        fn = flax_demos.compile_model(adapter.model)
        call = lambda x: np.asarray(fn(adapter.variables, jnp.asarray(x.transpose(0, 2, 3, 1)))[0])  # noqa: E731
        count = lambda: fn._cache_size()  # noqa: E731
    times, counts, outs = [], [], []
    with torch.no_grad(), paddle.no_grad():
        for x in (x4, x4, x4[:2], x4[:3]):
            start = time.perf_counter()
            outs.append(call(x))
            times.append(time.perf_counter() - start)
            counts.append(count())
    return {"times": times, "counts": counts, "logits": outs[0]}


@dataclass(frozen=True)
class DpRuns:
    """The dp check's run of every engine on one case (parity/dataparallel.py) and where it left its files."""

    case: ReplicaCase
    found: dataparallel.DpFound
    root: Path
    gates: dict[str, dict[int, dict[str, np.ndarray]]]

    def folder(self, variant: str) -> Path:
        return self.root / variant.replace("/", "-")


@pytest.fixture(scope="session")
def dp_runs(tmp_path_factory: pytest.TempPathFactory) -> DpRuns:
    """Every framework's data-parallel engine on 2 CPU replicas: 2 SGD steps (so a broadcast of rank 0's
    running statistics differs from keeping one's own) of a tiny ResNet at 16 px, global batch 4, no
    weight decay (so a summed gradient is exactly the mean at twice the learning rate)."""
    spec = get_spec("resnet18_small").replace(depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_width=8)
    pc = engine.ParityCase.seeded(spec, 16, 4, seed=0, weights=random_weights(spec, seed=2),
                                  hyper=engine.Hyper(steps=2))
    case = ReplicaCase(spec, pc.weights, pc.batches, 2, 0.01, 0.9, 0.0)
    root = tmp_path_factory.mktemp("dp")
    found = dataparallel.run_dp(case, FRAMEWORKS, root, timeout=300)
    assert not found.errors, found.errors
    gates = {v: dataparallel.variant_outputs(root / v.replace("/", "-"), 2)[1] for v in found.section}
    return DpRuns(case, found, root, gates)
