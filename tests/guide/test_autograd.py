"""Autograd: backward() vs jax.grad (`resnet-rosetta explain autograd`): every fact of guide/topics.py's 'autograd' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import paddle
import torch
from flax import linen as nn

from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY, Bench


# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {"gradients_land_in": {"torch": "p.grad", "paddle": "p.grad", "flax": "a returned tree"},
          "second_backward_gives": {"torch": 2, "paddle": 2, "flax": 1}}  # times one backward's gradient


def _where_gradients_land(framework: str) -> str:
    """Differentiate sum(W x) for a 2 -> 1 linear layer: is the gradient stored on W, or returned?"""
    if framework == "torch":
        linear = torch.nn.Linear(2, 1)
        returned = linear(torch.ones(1, 2)).sum().backward()
        stored = linear.weight.grad
    elif framework == "paddle":
        linear = paddle.nn.Linear(2, 1)
        returned = linear(paddle.ones([1, 2])).sum().backward()
        stored = linear.weight.grad
    else:
        dense = nn.Dense(1)
        params = dense.init(jax.random.key(0), jnp.ones((1, 2)))
        returned = jax.grad(lambda p: dense.apply(p, jnp.ones((1, 2))).sum())(params)
        stored = getattr(params["params"]["kernel"], "grad", None)
    if stored is not None and returned is None:
        np.testing.assert_array_equal(np.asarray(stored).reshape(-1), [1.0, 1.0])
        return "p.grad"
    np.testing.assert_array_equal(np.asarray(returned["params"]["kernel"]).reshape(-1), [1.0, 1.0])
    return "a returned tree"


def test_gradients_agree(bench: Bench) -> None:
    for fw in FRAMEWORKS:
        assert _where_gradients_land(fw) == CLAIMS["gradients_land_in"][fw], fw
    labels = np.arange(len(bench.x)) % TINY.num_classes
    grads = {fw: load(fw, "training").Trainer(TINY, bench.weights, lr=0.1).loss_and_grads(bench.x, labels)[1]
             for fw in FRAMEWORKS}
    for fw in ("paddle", "flax"):
        worst = max(compare(grads[fw][k], grads["torch"][k], 0).max_rel for k in grads["torch"])
        assert worst < tolerance("grad", pairwise=True), fw


def test_gradients_accumulate() -> None:
    """Two backward passes without clearing: d(sum)/d(fc bias) is the batch size per pass."""
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    times = CLAIMS["second_backward_gives"]
    dense = nn.Dense(3)  # jax.grad is a function transformation: the model does not matter
    params = dense.init(jax.random.key(0), jnp.ones((2, 4)))
    grad = jax.grad(lambda p: dense.apply(p, jnp.ones((2, 4))).sum())
    grad(params)  # a first call leaves nothing behind: the second returns d(sum)/d(bias) = batch = 2
    np.testing.assert_array_equal(grad(params)["params"]["bias"], np.full(3, times["flax"] * 2.0, np.float32))
    np.testing.assert_array_equal(grad(params)["params"]["kernel"], np.full((4, 3), 2.0, np.float32))

    model = TorchResNet(TINY)
    for _ in range(2):
        model(torch.from_numpy(x)).sum().backward()
    np.testing.assert_allclose(model.fc.bias.grad.numpy(), times["torch"] * len(x), rtol=1e-5)
    model.zero_grad()
    assert model.fc.bias.grad is None or not model.fc.bias.grad.any()

    layer = PaddleResNet(TINY)
    for _ in range(2):
        layer(paddle.to_tensor(x)).sum().backward()
    np.testing.assert_allclose(layer.out.bias.grad.numpy(), times["paddle"] * len(x), rtol=1e-5)
    layer.clear_gradients()
    assert layer.out.bias.grad is None or not layer.out.bias.grad.numpy().any()
