"""The three model.py files build the same network the same way: freshly initialised, each puts
scale 0 on the BN that ends a residual branch exactly when the spec asks (zero-init residual) and
draws what it initialises itself as torchvision does, and the classic Paddle constructor
`resnet(layers, class_dim)` builds the preset it names. Parametrized here, not by the conftest
fixture, so that the mutation runs (docs/mutation.md) can run this file without the conftest."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import canonical_shapes
from resnet_rosetta.common.counting import parameter_count
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.frameworks import FRAMEWORKS

TINY = {"basic": get_spec("resnet18_small").replace(depths=(1, 2, 1, 1), widths=(8, 8, 16, 16), stem_width=8,
                                                    input_size=16),
        "bottleneck": get_spec("resnet50_small").replace(depths=(1, 2, 1, 1), widths=(4, 4, 8, 8), stem_width=8,
                                                         input_size=16)}
LAST_BN = {"basic": "bn2", "bottleneck": "bn3"}


def _fresh_torch(spec: ResNetSpec) -> dict[str, np.ndarray]:
    from resnet_rosetta.frameworks.torch.model import ResNet

    return {k: v.detach().numpy() for k, v in ResNet(spec).state_dict().items()}


def _fresh_paddle(spec: ResNetSpec) -> dict[str, np.ndarray]:
    from resnet_rosetta.frameworks.paddle.model import ResNet

    return {k: v.numpy() for k, v in ResNet(spec).state_dict().items()}


def _fresh_flax(spec: ResNetSpec) -> dict[str, np.ndarray]:
    import jax
    import jax.numpy as jnp

    from resnet_rosetta.frameworks.flax.files import flatten
    from resnet_rosetta.frameworks.flax.model import ResNet

    x = jnp.zeros((1, spec.input_size, spec.input_size, spec.in_channels))
    # one compile, not one per op; an "rbg" key: XLA compiles its generator in a fraction of threefry's time
    return flatten(jax.jit(ResNet(spec).init)(jax.random.key(0, impl="rbg"), x))


def _zero_weights(spec: ResNetSpec) -> dict[str, np.ndarray]:
    """Zero canonical weights of `spec` (only the key names and shapes matter)."""
    return {k: np.zeros(shape, np.float32) for k, shape in canonical_shapes(spec).items()}


FRESH: dict[str, Callable[[ResNetSpec], dict[str, np.ndarray]]] = {
    "torch": _fresh_torch, "paddle": _fresh_paddle, "flax": _fresh_flax}


@pytest.mark.slow
@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("zero_init", [False, True])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fresh_bn_scales_follow_zero_init_residual(framework: str, block: str, zero_init: bool) -> None:
    spec = TINY[block].replace(zero_init_residual=zero_init)
    weights = rules.from_native(FRESH[framework](spec), spec, framework, f"fresh {framework} model")
    scales = {k: v for k, v in weights.items() if k.endswith(".weight") and v.ndim == 1}
    ends_branch = {k for k in scales if k.startswith("layer") and k.endswith(f".{LAST_BN[block]}.weight")}
    assert len(ends_branch) == sum(spec.depths)
    for key, scale in scales.items():
        expected = 0.0 if zero_init and key in ends_branch else 1.0
        np.testing.assert_array_equal(scale, np.full_like(scale, expected), err_msg=key)
    for key in (k for k in weights if k.endswith(".bias") and not k.startswith("fc")):
        np.testing.assert_array_equal(weights[key], 0.0, err_msg=key)


# What each model.py initialises itself (the rest is its framework's default): conv weights Kaiming
# normal on fan_out (torch; Flax's `conv_init`, drawn directly: compiling a whole init takes 10 s), the
# classifier uniform in +-1/sqrt(features) (torch's default, kept by the classic Paddle source)
OWN_INIT = {"torch": ("conv", "fc"), "paddle": ("fc",), "flax": ("conv",)}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fresh_weights_are_drawn_as_each_model_py_says(framework: str) -> None:
    spec = ResNetSpec("t_init", "basic", (1, 1), widths=(8, 16), stem="small", stem_width=8, num_classes=100,
                      input_size=4)
    if framework == "flax":
        import jax

        from resnet_rosetta.frameworks.flax.model import conv_init
        kernel = np.asarray(conv_init(jax.random.PRNGKey(0), (3, 3, 8, 16)))  # HWIO
        weights = {"layer2.0.conv1.weight": kernel.transpose(3, 2, 0, 1)}
    else:
        if framework == "torch":
            import torch
            torch.manual_seed(0)
        weights = rules.from_native(FRESH[framework](spec), spec, framework, f"fresh {framework} model")
    if "conv" in OWN_INIT[framework]:
        conv = weights["layer2.0.conv1.weight"]  # 8 -> 16 channels: fan_out 144, fan_in 72
        assert conv.shape == (16, 8, 3, 3) and abs(conv.std() / np.sqrt(2 / 144) - 1) < 0.1
    if "fc" in OWN_INIT[framework]:
        bound, fc = 1 / np.sqrt(spec.feature_dim), weights["fc.weight"]  # 1600 draws: the extremes
        assert -bound <= fc.min() < -0.99 * bound and 0.99 * bound < fc.max() <= bound  # within 1% of it


def test_the_classic_paddle_constructor_builds_the_named_preset() -> None:
    from resnet_rosetta.frameworks.paddle.model import SUPPORTED_LAYERS, resnet

    model = resnet()  # the classic defaults: 50 layers, 1000 classes
    spec = get_spec("resnet50")
    trainable = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    assert trainable == parameter_count(spec) and spec.num_classes == 1000
    assert set(model.state_dict()) == set(rules.to_native(_zero_weights(spec), spec, "paddle"))
    assert model.out.weight.shape == [2048, 1000]  # Paddle's Linear stores [in, out]
    assert resnet(layers=18, class_dim=10).out.weight.shape == [512, 10]
    assert SUPPORTED_LAYERS == (18, 34, 50, 101, 152)
    with pytest.raises(UserError, match=r"supported layers are \(18, 34, 50, 101, 152\) but input layer is 20"):
        resnet(layers=20)


@pytest.mark.parametrize("device_feeds_unbiased", [False, True], ids=["cpu", "fake-unbiased-device"])
def test_paddle_bn_feeds_what_the_spec_asks_whatever_the_device_feeds(device_feeds_unbiased: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Paddle's BatchNorm2D measures what the device's kernel feeds the running variance (once per
    device, cached under its name) and rescales only what that lacks. The CPU kernel feeds the biased
    variance; a fake kernel feeding the unbiased one (as cuDNN is said to) stands in for a GPU."""
    import paddle

    from resnet_rosetta.frameworks.paddle import model

    monkeypatch.setattr(model, "_NATIVE_UNBIASED", {})
    if device_feeds_unbiased:
        native_forward = paddle.nn.BatchNorm2D.forward

        def feeds_unbiased(self: paddle.nn.BatchNorm2D, x: paddle.Tensor) -> paddle.Tensor:
            old, m, n = self._variance.numpy(), self._momentum, int(np.prod(x.shape)) // x.shape[1]
            y = native_forward(self, x)
            fed = (self._variance.numpy() - m * old) / (1 - m)
            self._variance.set_value(m * old + (1 - m) * fed * n / (n - 1))
            return y
        monkeypatch.setattr(paddle.nn.BatchNorm2D, "forward", feeds_unbiased)
    assert model.native_running_var_is_unbiased() is device_feeds_unbiased
    assert model._NATIVE_UNBIASED == {paddle.get_device(): device_feeds_unbiased}
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2))  # n = 8
    fed = {"unbiased": x.var(axis=(0, 2, 3), ddof=1), "biased": x.var(axis=(0, 2, 3))}
    fed["native"] = fed["unbiased" if device_feeds_unbiased else "biased"]
    for rule, batch_var in fed.items():
        spec = ResNetSpec.from_json(TINY["basic"].replace(bn_momentum=0.25, bn_running_var=rule).to_json())
        bn = model.BatchNorm2D(3, spec)  # a spec read from JSON: its strings are not model.py's literals
        bn.train()
        bn(paddle.to_tensor(x.astype(np.float32)))
        np.testing.assert_allclose(bn._variance.numpy(), 0.75 + 0.25 * batch_var, rtol=1e-6, err_msg=rule)


def test_flax_bn_clips_a_batch_variance_rounded_below_zero() -> None:
    """Flax's BatchNorm takes both moments in one pass, Var = E[x^2] - E[x]^2, which rounds below zero
    on a near-constant channel in float32 (here -0.003, beyond -eps: the square root would be NaN); it
    clips at 0, as linen's own BatchNorm does."""
    import jax
    import jax.numpy as jnp

    from resnet_rosetta.frameworks.flax.model import BatchNorm

    x = jnp.asarray((100 + np.arange(6) % 2 * 3 * np.spacing(np.float32(100))).astype(np.float32).reshape(1, 2, 3, 1))
    assert float(jnp.square(x).mean() - jnp.square(x.mean())) < -TINY["basic"].bn_eps
    bn = BatchNorm(TINY["basic"], use_running_average=False)
    y, state = bn.apply(bn.init(jax.random.PRNGKey(0), x), x, mutable=["batch_stats"])
    assert np.isfinite(np.asarray(y)).all() and float(state["batch_stats"]["var"][0]) > 0
