"""Our models against the frameworks' own reference ResNets (the models the benchmark pairs with ours)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks.torch.files import to_state_dict
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet

TORCHVISION_PRESETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                       "wide_resnet50_2"]
PADDLE_VISION_PRESETS = ["resnet18", "resnet50", "resnext50_32x4d"]


@pytest.mark.parametrize("name", TORCHVISION_PRESETS)
def test_torch_state_dict_equals_torchvision(name: str) -> None:
    with torch.device("meta"):
        ours = TorchResNet(get_spec(name)).state_dict()
        theirs = getattr(torchvision.models, name)(weights=None).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_torch_outputs_equal_torchvision(name: str, rng: np.random.Generator) -> None:
    spec = get_spec(name)
    state = to_state_dict(rules.to_native(random_weights(spec, seed=3), spec, "torch"))
    ours, theirs = TorchResNet(spec).eval(), getattr(torchvision.models, name)(weights=None).eval()
    ours.load_state_dict(state)
    theirs.load_state_dict(state)
    x = torch.from_numpy(rng.normal(size=(2, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("name", PADDLE_VISION_PRESETS)
def test_paddle_reads_paddle_vision_weights_and_matches_it(name: str, rng: np.random.Generator) -> None:
    import paddle
    from paddle.vision import models

    from resnet_rosetta.frameworks.paddle.adapter import Adapter

    spec = get_spec(name)
    reference = getattr(models, name)()
    reference.eval()
    # paddle.vision's own initial weights, BN statistics made non-trivial
    native = {k: v.numpy() for k, v in reference.state_dict().items()}
    for key in native:
        if key.endswith(("_mean", "_variance")):
            native[key] = rng.uniform(0.5, 1.5, native[key].shape).astype(np.float32)
    reference.set_state_dict(native)
    ours = Adapter(spec, rules.from_native(native, spec, "paddle-vision", "paddle.vision state"))
    x = rng.normal(size=(2, 3, 64, 64)).astype(np.float32)
    with paddle.no_grad():
        expected = reference(paddle.to_tensor(x)).numpy()
    result = compare(ours.forward(x)["logits"], expected, tol=tolerance("reference"))
    assert result.passed, result


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_plain_flax_reference_has_torchvisions_parameters(name: str) -> None:
    """The plain Flax ResNet the Flax rows are measured against is the same network (v1.5,
    projection shortcuts): as many trainable parameters as torchvision counts for the preset."""
    import jax
    import jax.numpy as jnp

    from resnet_rosetta.common.counting import parameter_count
    from resnet_rosetta.frameworks.flax.reference import MODELS

    spec = get_spec(name)
    module = MODELS[name](num_classes=spec.num_classes)
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))
    count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes["params"]))
    assert count == parameter_count(spec)
