"""Mixed precision (`resnet-rosetta explain mixed-precision`): every fact of guide/topics.py's 'mixed-precision' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch
from flax import linen as nn

from resnet_rosetta.common.tolerance import compare
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.guide.pitfalls import TINY, Bench


CLAIMS = {"bf16_stored_mantissa_bits": 7,
          "autocast_context": {"torch": True, "flax": False},  # a context that casts each op, or none
          "runs_in_bf16_on_this_cpu": {"torch": True, "paddle": False, "flax": True},
          "parameters_stay": "float32"}


def test_bf16_stored_mantissa_bits() -> None:
    """bf16 stores 7 mantissa bits (float32 23): 1 + 2**-8 rounds to 1, 1 + 2**-7 survives."""
    bits = CLAIMS["bf16_stored_mantissa_bits"]
    assert jnp.finfo(jnp.bfloat16).nmant == bits and torch.finfo(torch.bfloat16).eps == 2.0 ** -bits
    x = torch.tensor([1 + 2.0 ** -7, 1 + 2.0 ** -8 + 2.0 ** -10], dtype=torch.float32)
    assert x.to(torch.bfloat16).float().tolist() == [1 + 2.0 ** -7, 1 + 2.0 ** -7]  # round to nearest
    assert float(abs(torch.tensor(1 + 2.0 ** -9).to(torch.bfloat16).float() - 1)) == 0  # unit round-off 2**-8


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bf16_paths(framework: str, bench: Bench) -> None:
    adapter = load(framework).Adapter(TINY, bench.weights)
    in_bf16 = CLAIMS["runs_in_bf16_on_this_cpu"][framework]
    param_dtype = CLAIMS["parameters_stay"]
    if framework == "torch":
        logits = torch_demos.bf16_logits(adapter.model.eval(), torch.from_numpy(bench.x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            conv_dtype = adapter.model.conv1(torch.from_numpy(bench.x)).dtype
        assert (conv_dtype == torch.bfloat16) == CLAIMS["autocast_context"]["torch"]
        assert (logits.dtype == torch.bfloat16) == in_bf16  # the classifier's matmul
        assert all(p.dtype == getattr(torch, param_dtype) for p in adapter.model.parameters())
        logits = logits.float().numpy()
    elif framework == "paddle":
        if paddle.is_compiled_with_cuda():
            pytest.skip("the claim is about the CPU wheel")
        adapter.model.eval()
        with pytest.warns(UserWarning, match="amp_guard can only be enabled on CUDAPlace, XPUPlace, and CustomPlace"):
            out = paddle_demos.bf16_logits(adapter.model, paddle.to_tensor(bench.x))
            with paddle.amp.auto_cast(dtype="bfloat16"):  # switched off: not even a matmul is cast
                matmul_dtype = paddle.matmul(paddle.ones([2, 2]), paddle.ones([2, 2])).dtype
        assert (matmul_dtype == paddle.bfloat16) == in_bf16 and (out.dtype == paddle.bfloat16) == in_bf16
        assert all(p.dtype == getattr(paddle, param_dtype) for p in adapter.model.parameters())
        np.testing.assert_array_equal(out.numpy(), adapter.forward(bench.x)["logits"])
        with pytest.raises(Exception, match="bfloat16"):  # no bf16 conv kernel on CPU
            paddle.nn.functional.conv2d(paddle.to_tensor(bench.x).astype("bfloat16"),
                                        paddle.ones([2, 3, 3, 3], dtype="bfloat16"))
        return
    else:
        x = jnp.asarray(bench.x.transpose(0, 2, 3, 1))
        out = jax.jit(flax_demos.bf16_logits, static_argnums=0)(adapter.model, adapter.variables, x)
        assert (out.dtype == jnp.bfloat16) == in_bf16
        assert all(v.dtype == getattr(jnp, param_dtype) for v in jax.tree.leaves(adapter.variables))
        conv = nn.Conv(4, (3, 3), dtype=jnp.bfloat16)  # or a compute dtype per module, float32 parameters
        conv_out, conv_vars = conv.init_with_output(jax.random.key(0), x[:1])
        assert conv_out.dtype == jnp.bfloat16 and conv_vars["params"]["kernel"].dtype == getattr(jnp, param_dtype)
        has_autocast = any(hasattr(module, "autocast") for module in (jax, nn, jnp))
        assert has_autocast == CLAIMS["autocast_context"]["flax"]
        logits = np.asarray(out, np.float32)
    error = compare(logits, bench.eval_reference["logits"], 0).max_rel
    assert 1e-3 < error < 5e-2  # clearly bf16, clearly the same network
