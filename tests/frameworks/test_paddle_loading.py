"""Loading weights into the Paddle model checks every tensor's shape: Paddle's own `set_state_dict` only
warns on a mismatch and keeps the initial values, so the adapter refuses first, naming the key."""
from __future__ import annotations

import warnings

import numpy as np
import paddle
import pytest

from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.frameworks import load
from resnet_rosetta.guide.pitfalls import TINY


def test_paddle_set_state_dict_only_warns_on_a_shape_mismatch() -> None:
    """Why the adapter checks: the wrong-shaped tensor is skipped and the random initial value stays."""
    layer = paddle.nn.Linear(3, 2)
    before = layer.bias.numpy().copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer.set_state_dict({"weight": layer.weight.numpy(), "bias": np.zeros(5, np.float32)})
    assert any("bias" in str(w.message) for w in caught)
    np.testing.assert_array_equal(layer.bias.numpy(), before)


@pytest.mark.parametrize("canonical,native,shape", [
    ("bn1.running_var", "conv._batch_norm._variance", (7,)),
    ("layer1.0.conv1.weight", "bb_0_0.conv0._conv.weight", (8, 8, 1, 1)),
    ("fc.bias", "out.bias", (11,)),
])
def test_wrong_shape_is_a_user_error_naming_the_key(canonical: str, native: str, shape: tuple[int, ...]) -> None:
    weights = dict(random_weights(TINY, seed=0))
    weights[canonical] = np.zeros(shape, np.float32)
    with pytest.raises(UserError, match=f"key {native}: expected shape .* found {tuple(shape)}".replace("(", r"\(")
                       .replace(")", r"\)")):
        load("paddle").Adapter(TINY, weights)


def test_right_shapes_load_every_value() -> None:
    weights = random_weights(TINY, seed=1)
    back = load("paddle").Adapter(TINY, weights).canonical_weights()
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
