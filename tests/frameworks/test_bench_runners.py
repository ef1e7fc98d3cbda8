"""Each framework's benchmark runner (`frameworks/<fw>/bench.py`) directly, without the sweep: our
model and the framework's reference model build a step that runs, the matmul factory multiplies in
each CPU math mode, TF32 is set and read back through the framework's own switches (present in the
CPU builds too), and a GPU asked for where there is none is `Unsupported`, not a crash."""
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


@pytest.fixture
def tf32_saved(framework: str) -> Iterator[None]:
    """The framework's process-wide TF32 switches, restored after the test (through the API the
    runner itself uses: torch refuses to read `allow_tf32` once both of its APIs set it)."""
    if framework == "torch":
        import torch
        saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
        yield
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (v == "tf32" for v in saved)
    elif framework == "paddle":
        import paddle
        core = paddle.base.core
        saved = core.get_cublas_switch(), core.get_cudnn_switch()
        yield
        core.set_cublas_switch(saved[0])
        core.set_cudnn_switch(saved[1])
    else:
        import jax
        saved = jax.config.jax_default_matmul_precision
        yield
        jax.config.update("jax_default_matmul_precision", saved)


def test_runner_matmul_maker_multiplies(runner: ModuleType, tf32_saved: None) -> None:
    for mode in ("tf32", "fp32"):  # tf32 is probed on GPUs only: its factory is made here, not run
        make = runner.matmul_maker("cpu", mode)
        assert runner.tf32_state()["matmul"] is (mode == "tf32")  # each mode sets the switch explicitly
    make(8)(3)  # three multiplications, one synchronisation
    assert runner.info("cpu")["device_name"] == "cpu"


def test_runner_sets_and_reads_back_tf32(runner: ModuleType, tf32_saved: None) -> None:
    for on in (False, True, False):
        runner.set_tf32(on)
        state = runner.tf32_state()
        assert (state["matmul"], state["conv"]) == (on, on), state["read"]


def test_runner_without_a_gpu_says_unsupported(runner: ModuleType) -> None:
    if runner.gpu_count():
        pytest.skip("this machine has a GPU")
    with pytest.raises(Unsupported, match="(?i)gpu|cuda"):
        runner.build(dataclasses.replace(TINY, device="gpu"))


def test_xla_memory_analysis_of_a_compiled_step() -> None:
    """The JAX figure on a GPU: arguments + outputs + temporaries - aliased (donated) bytes of
    the compiled step; checked on XLA's CPU analysis of a donated update, 64 x 64 float32."""
    import jax
    import jax.numpy as jnp
    from resnet_rosetta.frameworks.flax.bench import xla_step_bytes

    a = jnp.ones((64, 64), jnp.float32)
    stats = jax.jit(lambda x: x @ x + 1.0, donate_argnums=0).lower(a).compile().memory_analysis()
    assert stats.argument_size_in_bytes == stats.output_size_in_bytes == 64 * 64 * 4
    assert xla_step_bytes(stats) == 2 * 64 * 64 * 4 + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    assert xla_step_bytes(None) is None
    # the GPU path of the runner, wired on a device that says "gpu": lowered from shapes alone
    # (the training step's donated state is gone by the time memory is asked for)
    from types import SimpleNamespace
    from resnet_rosetta.frameworks.flax.bench import _peak_memory_for

    step = jax.jit(lambda x: x @ x + 1.0, donate_argnums=0)
    peak = _peak_memory_for(SimpleNamespace(platform="gpu"), step, (jax.eval_shape(lambda: a),))()
    assert peak == {"peak_memory_bytes": xla_step_bytes(stats),
                    "memory_kind": "device (XLA memory analysis of the compiled step)"}


def test_paddle_gpu_flags_are_set_one_by_one_and_refusals_recorded() -> None:
    """Paddle's cuDNN autotuning flags: each set where the build has it, else why not (the CPU
    wheel refuses all three: a GPU row states which ones took)."""
    import paddle
    from resnet_rosetta.frameworks.paddle.bench import GPU_FLAGS, set_gpu_flags

    done = set_gpu_flags()
    assert list(done) == list(GPU_FLAGS)
    for flag, value in done.items():
        if paddle.is_compiled_with_cuda():
            assert value == GPU_FLAGS[flag]
        else:
            assert str(value).startswith("not set:") and flag in str(value)
