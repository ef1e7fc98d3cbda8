"""Compilation: torch.compile, paddle.jit.to_static, jax.jit (`resnet-rosetta explain compilation`): every fact of guide/topics.py's 'compilation' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import functools
from typing import Any

import paddle
import pytest

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY, Bench


# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
# Compilations counted after calls at batch 4, 4, 2, 3 (`compiled_runs` in conftest.py).
CLAIMS = {"compiled_output_matches_oracle": True,
          "first_two_calls_compile": [1, 1],  # on the first call, reused on the second
          "returns_the_model_itself": {"torch": False, "paddle": True, "flax": False},
          "counts_after_new_shapes": {"torch": [1, 1, 2, 2], "paddle": [1, 1, 2, 3], "flax": [1, 1, 2, 3],
                                      "paddle-sot": [1, 1, 2, 2]}}  # torch and SOT: the batch marked dynamic


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_first_call_compiles(framework: str, compiled_runs: dict[str, dict[str, Any]], bench: Bench) -> None:
    run = compiled_runs[framework]
    assert run["counts"][:2] == CLAIMS["first_two_calls_compile"]
    assert run["times"][0] > run["times"][1]
    matches = compare(run["logits"], bench.eval_reference["logits"], 0).max_rel < tolerance("eval")
    assert matches == CLAIMS["compiled_output_matches_oracle"]


@functools.cache  # once per bench: test_flipped_claims.py calls the test again
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
    counts = _paddle_sot_translations(bench) if framework == "paddle-sot" else compiled_runs[framework]["counts"]
    assert counts == CLAIMS["counts_after_new_shapes"][framework]


def test_what_compilation_returns(bench: Bench) -> None:
    same = CLAIMS["returns_the_model_itself"]
    model = TorchResNet(TINY)
    forward = model.forward
    wrapper = torch_demos.compile_model(model, backend="eager")
    assert (wrapper is model) == same["torch"]
    assert wrapper._orig_mod is model and model.forward == forward
    assert type(model.forward).__name__ == "method"  # the model itself stays eager
    layer = PaddleResNet(TINY)
    assert (paddle_demos.compile_model(layer) is layer) == same["paddle"]
    assert type(layer.forward).__name__ == "ASTStaticFunction"  # the original object is now static
    flax_model = FlaxResNet(TINY)
    compiled = flax_demos.compile_model(flax_model)
    assert (compiled is flax_model.apply) == same["flax"] and hasattr(compiled, "lower")  # a jitted function
    assert type(flax_model.apply).__name__ == "method" and not hasattr(flax_model.apply, "lower")
