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


def test_fresh_model_mode() -> None:
    assert TorchResNet(TINY).training
    assert PaddleResNet(TINY).training
    assert inspect.signature(FlaxResNet.__call__).parameters["train"].default is False


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_train_mode_updates_state(framework: str, bench: Bench) -> None:
    adapter = load(framework).Adapter(TINY, bench.weights)
    before = adapter.canonical_weights()["bn1.running_mean"].copy()
    if framework == "torch":
        buffer = adapter.model.bn1.running_mean
        adapter.forward(bench.x, train=True)
        assert adapter.model.bn1.running_mean is buffer  # same tensor, updated in place
    elif framework == "paddle":
        buffer = adapter.model.conv._batch_norm._mean
        adapter.forward(bench.x, train=True)
        assert adapter.model.conv._batch_norm._mean is buffer
    else:
        train_step = jax.jit(partial(adapter.model.apply, train=True, mutable=["batch_stats"]))
        _, updates = train_step(adapter.variables, jnp.asarray(bench.x.transpose(0, 2, 3, 1)))
        assert set(updates) == {"batch_stats"}
        np.testing.assert_array_equal(adapter.variables["batch_stats"]["bn1"]["mean"], before)  # inputs untouched
        adapter.variables = {**adapter.variables, **updates}  # the caller keeps the new state
    assert np.abs(adapter.canonical_weights()["bn1.running_mean"] - before).max() > 1e-3


def test_flax_refuses_hidden_state_update(bench: Bench) -> None:
    adapter = bench.adapter("flax")
    with pytest.raises(flax_errors.ModifyScopeVariableError):
        adapter.model.apply(adapter.variables, jnp.asarray(bench.x.transpose(0, 2, 3, 1)), train=True)
