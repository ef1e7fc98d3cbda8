"""Random numbers, dropout and train/eval (`resnet-rosetta explain randomness`): every fact of
guide/topics.py's 'randomness' topic, proved on the frameworks as installed."""
from __future__ import annotations

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
import paddle
import pytest
import torch
from flax import linen as nn

from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.paddle import demos as paddle_demos
from resnet_rosetta.frameworks.torch import demos as torch_demos
from resnet_rosetta.guide.pitfalls import TINY, Bench

RATE = 0.5
CLAIMS = {"mask_independent_of_other_draws": {"torch": False, "paddle": False, "flax": True},
          "identity_in_eval": {"torch": True, "paddle": True, "flax": True},
          "kept_scale": {"torch": 1 / (1 - RATE), "paddle": 1 / (1 - RATE), "flax": 1 / (1 - RATE)},
          "train_call_needs_a_key": {"torch": False, "paddle": False, "flax": True},
          "flax_use_running_average": {"train": False, "eval": True}}  # BN's switch, set from `train`
X = np.ones((4, 256), np.float32)


def _dropped(framework: str, train: bool, seed: int, extra_draw: bool = False) -> np.ndarray:
    """Dropout of X seeded with `seed` (global seed or key), optionally after someone else draws once."""
    if framework == "torch":
        torch.manual_seed(seed)
        if extra_draw:
            torch.rand(1)
        return torch_demos.dropout_features(torch.from_numpy(X), RATE, train).numpy()
    if framework == "paddle":
        paddle.seed(seed)
        if extra_draw:
            paddle.rand([1])
        return paddle_demos.dropout_features(paddle.to_tensor(X), RATE, train).numpy()
    key = jax.random.key(seed)
    if extra_draw:
        jax.random.normal(key, (1,))  # a key is a value: using it elsewhere changes nothing
    return np.asarray(flax_demos.dropout_features(jnp.asarray(X), RATE, train, key))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dropout_mask_source(framework: str) -> None:
    first, again = _dropped(framework, True, 0), _dropped(framework, True, 0)
    np.testing.assert_array_equal(first, again)  # seeded: reproducible
    assert not np.array_equal(first, _dropped(framework, True, 1))  # the seed or key decides the mask
    after_draw = _dropped(framework, True, 0, extra_draw=True)
    assert np.array_equal(after_draw, first) == CLAIMS["mask_independent_of_other_draws"][framework]


def test_flax_dropout_needs_a_key() -> None:
    calls = {"torch": lambda: torch_demos.dropout_features(torch.from_numpy(X), RATE, True),  # the global generator
             "paddle": lambda: paddle_demos.dropout_features(paddle.to_tensor(X), RATE, True),
             "flax": lambda: flax_demos.dropout_features(jnp.asarray(X), RATE, True)}  # no key given
    for framework, call in calls.items():
        try:
            call()
            refused = False
        except flax.errors.InvalidRngError as e:
            refused = "dropout" in str(e)
        assert refused == CLAIMS["train_call_needs_a_key"][framework], framework


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dropout_scaling(framework: str) -> None:
    out = _dropped(framework, True, 0)
    kept = out != 0
    np.testing.assert_allclose(out[kept], CLAIMS["kept_scale"][framework], rtol=1e-6)
    assert 0.4 < kept.mean() < 0.6  # about 1 - rate kept (1024 draws)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dropout_off_in_eval(framework: str) -> None:
    assert np.array_equal(_dropped(framework, False, 0), X) == CLAIMS["identity_in_eval"][framework]


def test_one_flag_or_one_switch_per_layer(bench: Bench) -> None:
    """torch/Paddle: eval() reaches every BN; Flax: the model's `train` argument sets use_running_average."""
    model = load("torch").Adapter(TINY, bench.weights).model
    model.eval()
    assert not any(m.training for m in model.modules())
    layer = load("paddle").Adapter(TINY, bench.weights).model
    layer.eval()
    assert not any(sub.training for sub in layer.sublayers())
    adapter = load("flax").Adapter(TINY, bench.weights)
    x = jnp.asarray(bench.x.transpose(0, 2, 3, 1))
    seen: dict[bool, set[bool]] = {True: set(), False: set()}  # train -> use_running_average values seen
    for train in (True, False):
        def record(next_fun, args, kwargs, context, train=train):  # noqa: ANN001, ANN202
            if hasattr(context.module, "use_running_average"):
                seen[train].add(context.module.use_running_average)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(record):
            adapter.model.apply(adapter.variables, x, train=train, mutable=["batch_stats"] if train else False)
    claimed = CLAIMS["flax_use_running_average"]
    assert seen == {True: {claimed["train"]}, False: {claimed["eval"]}}
