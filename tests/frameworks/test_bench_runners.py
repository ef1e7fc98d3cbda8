"""Each framework's benchmark runner (`frameworks/<fw>/bench.py`) directly, without the sweep: our
model and the framework's reference model build a step that runs, the matmul factory multiplies,
and a GPU asked for where there is none is `Unsupported`, not a crash."""
from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Iterator

import pytest

from resnet_rosetta import frameworks
from resnet_rosetta.benchmarks.config import DEFAULT_EXEC
from resnet_rosetta.common.errors import Unsupported
from resnet_rosetta.common.workload import WorkloadConfig

TINY = WorkloadConfig(arch="resnet18", impl="ours", mode="infer", batch=1, precision="fp32", execution="eager",
                      channels_last=False, size=32, device="cpu")


@pytest.fixture
def runner(framework: str) -> Iterator[ModuleType]:
    """The framework's runner; Paddle's process-wide oneDNN flag, which its runner switches on for
    the CPU, is restored afterwards so later tests in this process see Paddle's default kernels."""
    if framework != "paddle":
        yield frameworks.load(framework, "bench")
        return
    import paddle
    flags = paddle.get_flags(["FLAGS_use_onednn"])
    yield frameworks.load(framework, "bench")
    paddle.set_flags(flags)


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_runner_builds_a_step_that_runs(runner: ModuleType, framework: str, impl: str) -> None:
    workload = runner.build(dataclasses.replace(TINY, impl=impl, execution=DEFAULT_EXEC[framework]))
    workload.sync([workload.step()])
    memory = workload.peak_memory()
    assert memory["peak_memory_bytes"] > 0 and memory["memory_kind"] == "process peak RSS"


def test_runner_matmul_maker_multiplies(runner: ModuleType) -> None:
    runner.matmul_maker("cpu", "fp32")(8)()
    assert runner.info("cpu")["device_name"] == "cpu"


def test_runner_without_a_gpu_says_unsupported(runner: ModuleType) -> None:
    if runner.gpu_count():
        pytest.skip("this machine has a GPU")
    with pytest.raises(Unsupported, match="(?i)gpu|cuda"):
        runner.build(dataclasses.replace(TINY, device="gpu"))
