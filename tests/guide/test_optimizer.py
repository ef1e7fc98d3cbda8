"""Optimizer semantics: momentum and weight decay (`resnet-rosetta explain optimizer`): every fact of guide/topics.py's 'optimizer' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import paddle
import pytest
import torch

from resnet_rosetta.frameworks import FRAMEWORKS


LR, MU, WD = 0.1, 0.9, 0.05
# p = 1, g = 0, wd = 0.05: add_decayed_weights after sgd grows p
CLAIMS = {"decay_after_sgd": 1.05, "decay_scaled_by_lr": {"torch": True, "paddle": True, "flax": True},
          "momentum_applied": {"torch": True, "paddle": True, "flax": True},  # b = mu b + g, not b = g
          "gradient_dampened": {"torch": False, "paddle": False, "flax": False}}  # b = mu b + (1 - mu) g
P0 = np.array([1.0, -2.0, 0.5], np.float32)
GRADS = np.array([[0.3, -0.1, 0.2], [0.1, 0.4, -0.3], [-0.2, 0.2, 0.1]], np.float32)


def sgd_reference(decay_scaled_by_lr: bool = True, momentum: bool = True, dampened: bool = False) -> np.ndarray:
    """b = mu b + (g + wd p); p -= lr b, in float64 (or with decay outside the lr scaling, without momentum,
    or with the new gradient dampened by 1 - mu)."""
    mu = MU if momentum else 0.0
    p, b = P0.astype(np.float64), np.zeros(3)
    for g in GRADS:
        g = g + WD * p if decay_scaled_by_lr else g
        b = mu * b + ((1 - mu) * g if dampened else g)
        p = p - LR * b - (0.0 if decay_scaled_by_lr else WD * p)
    return p


def sgd_native(framework: str) -> np.ndarray:
    """Three steps of the framework's momentum SGD with coupled L2 decay, as the Trainers build it."""
    if framework == "torch":
        p = torch.nn.Parameter(torch.from_numpy(P0.copy()))
        opt = torch.optim.SGD([p], lr=LR, momentum=MU, weight_decay=WD, dampening=0.0, nesterov=False)
        for g in GRADS:
            p.grad = torch.from_numpy(g.copy())
            opt.step()
        return p.detach().numpy()
    if framework == "paddle":
        p = paddle.create_parameter([3], "float32", default_initializer=paddle.nn.initializer.Assign(P0))
        opt = paddle.optimizer.Momentum(learning_rate=LR, momentum=MU, parameters=[p], use_nesterov=False,
                                        weight_decay=paddle.regularizer.L2Decay(WD))
        for g in GRADS:
            (paddle.to_tensor(g) * p).sum().backward()  # gradient exactly g
            opt.step()
            opt.clear_grad()
        return p.numpy()
    tx = optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR, MU, nesterov=False))
    return _optax_steps(tx)


def _optax_steps(tx: optax.GradientTransformation) -> np.ndarray:
    params = jnp.asarray(P0)
    state = tx.init(params)
    for g in GRADS:
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
    return np.asarray(params)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_optimizer_update_rule(framework: str) -> None:
    expected = sgd_reference(CLAIMS["decay_scaled_by_lr"][framework], CLAIMS["momentum_applied"][framework],
                             CLAIMS["gradient_dampened"][framework])
    np.testing.assert_allclose(sgd_native(framework), expected, rtol=1e-6)


def test_optax_chain_order_matters() -> None:
    # the guide's example: p = 1, g = 0, wd = 0.05 after one step of sgd then add_decayed_weights
    tx = optax.chain(optax.sgd(LR), optax.add_decayed_weights(0.05))
    p1 = jnp.ones(1)
    updates, _ = tx.update(jnp.zeros(1), tx.init(p1), p1)
    np.testing.assert_allclose(np.asarray(optax.apply_updates(p1, updates)), [CLAIMS["decay_after_sgd"]], rtol=1e-6)
    decay_after = _optax_steps(optax.chain(optax.sgd(LR, MU), optax.add_decayed_weights(WD)))
    # add_decayed_weights adds wd * p to the *update*, which apply_updates adds: p += -lr b + wd p
    p, b = P0.astype(np.float64), np.zeros(3)
    for g in GRADS:
        b = MU * b + g
        p = p - LR * b + WD * p
    np.testing.assert_allclose(decay_after, p, rtol=1e-6)
    assert np.abs(decay_after - sgd_reference()).max() > 1e-2
