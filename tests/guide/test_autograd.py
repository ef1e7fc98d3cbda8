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


def test_gradients_agree(bench: Bench) -> None:
    labels = np.arange(len(bench.x)) % TINY.num_classes
    grads = {fw: load(fw, "training").Trainer(TINY, bench.weights, lr=0.1).loss_and_grads(bench.x, labels)[1]
             for fw in FRAMEWORKS}
    for fw in ("paddle", "flax"):
        worst = max(compare(grads[fw][k], grads["torch"][k], 0).max_rel for k in grads["torch"])
        assert worst < tolerance("grad", pairwise=True), fw


def test_gradients_accumulate() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    model = TorchResNet(TINY)
    for _ in range(2):
        model(torch.from_numpy(x)).sum().backward()
    twice = model.fc.bias.grad.clone()
    model.zero_grad()
    model(torch.from_numpy(x)).sum().backward()
    np.testing.assert_allclose(twice.numpy(), 2 * model.fc.bias.grad.numpy(), rtol=1e-5)

    layer = PaddleResNet(TINY)
    for _ in range(2):
        layer(paddle.to_tensor(x)).sum().backward()
    twice_paddle = layer.out.bias.grad.numpy().copy()
    layer.clear_gradients()
    layer(paddle.to_tensor(x)).sum().backward()
    np.testing.assert_allclose(twice_paddle, 2 * layer.out.bias.grad.numpy(), rtol=1e-5)

    dense = nn.Dense(3)  # jax.grad is a function transformation: the model does not matter
    params = dense.init(jax.random.key(0), jnp.ones((2, 4)))
    grad = jax.grad(lambda p: dense.apply(p, jnp.ones((2, 4))).sum())
    grad(params)  # a first call leaves nothing behind: the second returns d(sum)/d(bias) = batch = 2, not 4
    np.testing.assert_array_equal(grad(params)["params"]["bias"], np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(grad(params)["params"]["kernel"], np.full((4, 3), 2.0, np.float32))
