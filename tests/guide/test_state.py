"""Train/eval switching and where state lives (`resnet-rosetta explain state`): every fact of guide/topics.py's 'state' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import inspect
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import errors as flax_errors

from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY, Bench


# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {"fresh_mode": {"torch": "train", "paddle": "train", "flax": "argument"},
          "train_forward_updates_in_place": {"torch": True, "paddle": True, "flax": False},
          "flax_refuses_hidden_update": True}


def test_fresh_model_mode() -> None:
    mode = CLAIMS["fresh_mode"]
    assert ("train" if TorchResNet(TINY).training else "eval") == mode["torch"]
    assert ("train" if PaddleResNet(TINY).training else "eval") == mode["paddle"]
    flax_model = FlaxResNet(TINY)
    train_arg = inspect.signature(FlaxResNet.__call__).parameters.get("train")
    flax_mode = "argument" if train_arg is not None and not hasattr(flax_model, "training") else "attribute"
    assert flax_mode == mode["flax"] and train_arg.default is False


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_train_mode_updates_state(framework: str, bench: Bench) -> None:
    adapter = load(framework).Adapter(TINY, bench.weights)
    before = adapter.canonical_weights()["bn1.running_mean"].copy()
    if framework == "torch":
        buffer = adapter.model.bn1.running_mean
        adapter.forward(bench.x, train=True)
        in_place = adapter.model.bn1.running_mean is buffer and np.abs(buffer.numpy() - before).max() > 1e-3
    elif framework == "paddle":
        buffer = adapter.model.conv._batch_norm._mean
        adapter.forward(bench.x, train=True)
        in_place = adapter.model.conv._batch_norm._mean is buffer and np.abs(buffer.numpy() - before).max() > 1e-3
    else:
        train_step = jax.jit(partial(adapter.model.apply, train=True, mutable=["batch_stats"]))
        _, updates = train_step(adapter.variables, jnp.asarray(bench.x.transpose(0, 2, 3, 1)))
        assert set(updates) == {"batch_stats"}  # the new state is returned
        in_place = not np.array_equal(adapter.variables["batch_stats"]["bn1"]["mean"], before)
        adapter.variables = {**adapter.variables, **updates}  # the caller keeps the new state
    assert in_place == CLAIMS["train_forward_updates_in_place"][framework]
    assert np.abs(adapter.canonical_weights()["bn1.running_mean"] - before).max() > 1e-3


def test_flax_refuses_hidden_state_update(bench: Bench) -> None:
    adapter = bench.adapter("flax")
    try:
        adapter.model.apply(adapter.variables, jnp.asarray(bench.x.transpose(0, 2, 3, 1)), train=True)
        refused = False
    except flax_errors.ModifyScopeVariableError:
        refused = True
    assert refused == CLAIMS["flax_refuses_hidden_update"]
