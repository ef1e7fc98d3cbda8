"""What several guide tests share: the repository's paths, one spec for initial values, and the state
or flags a freshly built model or framework shows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import paddle
from flax import linen as nn
from flax import traverse_util

from resnet_rosetta.frameworks.flax import demos as flax_demos
from resnet_rosetta.frameworks.flax.files import flatten
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet
from resnet_rosetta.guide.pitfalls import TINY

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "differences.json"
# Every test that needs initial values uses this one spec: a Flax initialisation compiles a random
# op per parameter shape on first use (the slowest step of the guide's tests); later ones reuse them.
# Few distinct shapes, and one 3x3 conv with fan_in != fan_out (layer4.0.conv1: 8 -> 32).
INIT_SPEC = TINY.replace(widths=(8, 8, 8, 32), num_classes=64)


def native_state(framework: str, spec: Any = TINY, values: bool = False) -> dict[str, Any]:
    """A freshly built model's state under native names (torch and Paddle state_dict, Flax variable paths);
    for Flax only shapes (`jax.ShapeDtypeStruct`) unless `values`."""
    if framework == "torch":
        return {k: v.numpy() for k, v in TorchResNet(spec).state_dict().items()}
    if framework == "paddle":
        return {k: v.numpy() for k, v in PaddleResNet(spec).state_dict().items()}
    if values:
        return flatten(flax_demos.seeded_model(spec, 0))
    return flax_shapes(spec)


def flax_shapes(spec: Any) -> dict[str, jax.ShapeDtypeStruct]:
    x = jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, spec.in_channels), jnp.float32)
    variables = jax.eval_shape(FlaxResNet(spec).init, jax.random.key(0), x)
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(variables).items()}


def flax_modules(spec: Any) -> dict[tuple[str, ...], nn.Module]:
    """Every Flax submodule called in a forward, by path (the model builds them lazily)."""
    seen: dict[tuple[str, ...], nn.Module] = {}

    def record(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        seen[context.module.path] = context.module
        return next_fun(*args, **kwargs)

    x = jnp.zeros((1, spec.input_size, spec.input_size, spec.in_channels))
    with nn.intercept_methods(record):
        jax.eval_shape(FlaxResNet(spec).init, jax.random.key(0), x)
    return seen


def paddle_flag(name: str) -> Any:
    """A Paddle flag's value, or "absent" when this build does not define it."""
    try:
        return paddle.get_flags([name])[name]
    except ValueError:
        return "absent"
