"""Compilation: torch.compile, paddle.jit.to_static, jax.jit (`resnet-rosetta explain compilation`): every fact of guide/topics.py's 'compilation' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import time
from typing import Any

import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY, Bench


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


@pytest.fixture(scope="module")
def compiled_runs(bench: Bench) -> dict[str, dict[str, Any]]:
    return {fw: _compiled_runs(fw, bench) for fw in FRAMEWORKS}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_first_call_compiles(framework: str, compiled_runs: dict[str, dict[str, Any]], bench: Bench) -> None:
    run = compiled_runs[framework]
    assert run["counts"][:2] == [1, 1]  # compiled on the first call, reused on the second
    assert run["times"][0] > run["times"][1]
    assert compare(run["logits"], bench.eval_reference["logits"], 0).max_rel < tolerance("eval")


def _paddle_sot_translations(bench: Bench) -> list[int]:
    """Paddle's default to_static (SOT, no full_graph): bytecode translations after each call."""
    from paddle.jit.sot.opcode_translator.executor.executor_cache import OpcodeExecutorCache

    model = load("paddle").Adapter(TINY, bench.weights).model
    model.eval()
    fn, cache = paddle.jit.to_static(model), OpcodeExecutorCache()
    start, counts = cache.translate_count, []
    with paddle.no_grad():
        for x in (bench.x, bench.x, bench.x[:2], bench.x[:3]):
            fn(paddle.to_tensor(x))
            counts.append(cache.translate_count - start)
    return counts


@pytest.mark.parametrize("framework", [*FRAMEWORKS, "paddle-sot"])
def test_new_shapes_recompile(framework: str, compiled_runs: dict[str, dict[str, Any]], bench: Bench) -> None:
    if framework == "paddle-sot":  # like torch: the first new shape makes the batch dynamic
        assert _paddle_sot_translations(bench) == [1, 1, 2, 2]
        return
    expected = [1, 1, 2, 2] if framework == "torch" else [1, 1, 2, 3]  # torch: batch size marked dynamic
    assert compiled_runs[framework]["counts"] == expected


def test_what_compilation_returns(bench: Bench) -> None:
    model = TorchResNet(TINY)
    forward = model.forward
    wrapper = torch_demos.compile_model(model, backend="eager")
    assert wrapper is not model and wrapper._orig_mod is model and model.forward == forward
    assert type(model.forward).__name__ == "method"  # the model itself stays eager
    layer = PaddleResNet(TINY)
    assert paddle_demos.compile_model(layer) is layer
    assert type(layer.forward).__name__ == "ASTStaticFunction"  # the original object is now static
    flax_model = FlaxResNet(TINY)
    compiled = flax_demos.compile_model(flax_model)
    assert compiled is not flax_model.apply and hasattr(compiled, "lower")  # a jitted function
    assert type(flax_model.apply).__name__ == "method" and not hasattr(flax_model.apply, "lower")
