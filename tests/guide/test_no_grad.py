"""Gradients off, in-place ops and immutability (`resnet-rosetta explain no-grad`): every fact of
guide/topics.py's 'no-grad' topic, proved on the frameworks as installed."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch

from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.guide.pitfalls import TINY, Bench

A = np.array([0.5, -1.0, 2.0], np.float32)
CLAIMS = {"cut_factor_is_constant": {"torch": True, "paddle": True, "flax": True},  # d/da a*cut(a) = a, not 2a
          "paddle_data_stop_gradient": True,
          "graph_recorded_by_default": {"torch": True, "paddle": True, "flax": False},
          "augmented_assignment_in_place": {"torch": True, "paddle": False, "flax": False},
          "in_place_op_breaks_backward": {"torch": True, "paddle": True},
          "residual_add_in_place": {"torch": True, "paddle": False}}


def _backward_refused(y: torch.Tensor | paddle.Tensor) -> bool:
    """Whether y.sum().backward() raises because a value it needs was modified in place."""
    try:
        y.sum().backward()
    except RuntimeError as e:
        return "modified by an inplace operation" in str(e)
    return False


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_grad_forward(framework: str, bench: Bench) -> None:
    adapter = load(framework).Adapter(TINY, bench.weights)
    if framework == "torch":
        logits = torch_demos.inference_logits(adapter.model, torch.from_numpy(bench.x))
        assert not logits.requires_grad and logits.grad_fn is None
        recorded = adapter.model(torch.from_numpy(bench.x)).grad_fn is not None  # outside no_grad
    elif framework == "paddle":
        logits = paddle_demos.inference_logits(adapter.model, paddle.to_tensor(bench.x))
        assert logits.stop_gradient
        recorded = not adapter.model(paddle.to_tensor(bench.x)).stop_gradient  # outside no_grad
    else:
        x = jnp.asarray(bench.x.transpose(0, 2, 3, 1))
        logits = flax_demos.inference_logits(adapter.model, adapter.variables, x)
        assert isinstance(logits, jax.Array) and not isinstance(logits, jax.core.Tracer)  # a plain value
        recorded = any(hasattr(logits, attr) for attr in ("grad", "grad_fn", "stop_gradient"))
    assert recorded == CLAIMS["graph_recorded_by_default"][framework]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_detach(framework: str) -> None:
    """d/da sum(a * cut(a)) = cut(a) = a, not 2a: the cut factor is a constant."""
    if framework == "torch":
        a = torch.tensor(A, requires_grad=True)
        (a * torch_demos.frozen_features(a)).sum().backward()
        grad = a.grad.numpy()
    elif framework == "paddle":
        a = paddle.to_tensor(A, stop_gradient=False)
        (a * paddle_demos.frozen_features(a)).sum().backward()
        grad = a.grad.numpy()
    else:
        grad = np.asarray(jax.grad(lambda a: (a * flax_demos.frozen_features(a)).sum())(jnp.asarray(A)))
    np.testing.assert_allclose(grad, A if CLAIMS["cut_factor_is_constant"][framework] else 2 * A, rtol=1e-6)


def test_new_tensor_defaults() -> None:
    assert not torch.tensor(A).requires_grad and torch.nn.Linear(2, 2).weight.requires_grad
    assert paddle.to_tensor(A).stop_gradient == CLAIMS["paddle_data_stop_gradient"]
    assert not paddle.nn.Linear(2, 2).weight.stop_gradient
    # JAX: which argument is differentiated is an argument of grad, not a property of the array
    f = lambda a, b: (a * b).sum()  # noqa: E731
    a, b = jnp.asarray(A), jnp.asarray(2 * A)
    np.testing.assert_allclose(jax.grad(f, argnums=0)(a, b), 2 * A)
    np.testing.assert_allclose(jax.grad(f, argnums=1)(a, b), A)


def test_augmented_assignment() -> None:
    in_place = CLAIMS["augmented_assignment_in_place"]
    a = torch.tensor(A, requires_grad=True)
    y = before = torch.sigmoid(a)  # sigmoid's backward reads its output
    y += 1
    assert (y is before) == in_place["torch"] and _backward_refused(y) == in_place["torch"]
    p = paddle.to_tensor(A, stop_gradient=False)
    y_paddle = before_paddle = paddle.nn.functional.sigmoid(p)
    y_paddle += 1  # a new tensor: the saved output is untouched
    assert (y_paddle is before_paddle) == in_place["paddle"] and _backward_refused(y_paddle) == in_place["paddle"]
    s = 1 / (1 + np.exp(-A))
    np.testing.assert_allclose(p.grad.numpy(), s * (1 - s), rtol=1e-5)
    x = jnp.asarray(A)
    y_jax = x
    y_jax += 1
    assert (y_jax is x) == in_place["flax"] and np.array_equal(np.asarray(x), A)


def test_explicit_in_place() -> None:
    breaks = CLAIMS["in_place_op_breaks_backward"]
    y = torch.sigmoid(torch.tensor(A, requires_grad=True))
    y.add_(1)
    assert _backward_refused(y) == breaks["torch"]
    y_paddle = paddle.nn.functional.sigmoid(paddle.to_tensor(A, stop_gradient=False))
    y_paddle.add_(paddle.ones([3]))
    assert _backward_refused(y_paddle) == breaks["paddle"]
    x = jnp.asarray(A)
    with pytest.raises(TypeError, match="immutable"):
        x[0] = 1  # type: ignore[index]
    updated = x.at[0].set(1.0)
    assert float(updated[0]) == 1.0 and np.array_equal(np.asarray(x), A)


def test_residual_add(bench: Bench) -> None:
    """The BN output that ends the residual branch: modified in place in PyTorch, untouched in Paddle."""
    model = load("torch").Adapter(TINY, bench.weights).model.train()
    seen: list[torch.Tensor] = []
    model.layer1[0].bn2.register_forward_hook(lambda m, i, out: seen.append(out))
    model(torch.from_numpy(bench.x)).sum().backward()  # in place, and the backward still works
    in_place = CLAIMS["residual_add_in_place"]
    assert (seen[0]._version > 0) == in_place["torch"] and model.conv1.weight.grad is not None  # += (and ReLU_)
    layer = load("paddle").Adapter(TINY, bench.weights).model
    layer.train()
    captured: list[paddle.Tensor] = []
    layer.bb_0_0.conv1.register_forward_post_hook(lambda m, i, out: captured.append((out, out.numpy().copy())))
    layer(paddle.to_tensor(bench.x)).sum().backward()
    out, copy = captured[0]
    assert (out.inplace_version > 0 or not np.array_equal(out.numpy(), copy)) == in_place["paddle"]