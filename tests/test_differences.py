"""Every fact in docs/differences.md (`resnet-rosetta explain`), proved on the frameworks as installed.

Each test is named by a row of guide/topics.py; tests/test_explain.py checks that every row
names a test that exists here. Models are tiny (guide/pitfalls.py: TINY, 32x32, batch 4) so the
whole file runs in about a minute on two cores.
"""
from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import paddle
import pytest
import torch
from flax import errors as flax_errors
from flax import linen as nn
from flax import traverse_util

from resnet_rosetta.guide.pitfalls import PITFALLS, TINY, TOLERANCE_KIND, Bench, Pitfall
from resnet_rosetta.guide.topics import BLOCK_CLASSES
from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS, load
from resnet_rosetta.frameworks.flax import demos as explain_flax
from resnet_rosetta.frameworks.flax.files import flatten
from resnet_rosetta.frameworks.flax.model import ResNet as FlaxResNet
from resnet_rosetta.frameworks.paddle import demos as explain_paddle
from resnet_rosetta.frameworks.paddle.model import ResNet as PaddleResNet
from resnet_rosetta.frameworks.torch import demos as explain_torch
from resnet_rosetta.frameworks.torch.model import ResNet as TorchResNet

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "differences.json"
TINY50 = TINY.replace(name="tiny50", block="bottleneck", num_classes=10)
# Every test that needs initial values uses this one spec: a Flax initialisation compiles a random
# op per parameter shape on first use (the slowest step of this file); later ones reuse them. Few
# distinct shapes, and one 3x3 conv with fan_in != fan_out (layer4.0.conv1: 8 -> 32).
INIT_SPEC = TINY.replace(widths=(8, 8, 8, 32), num_classes=64)


@pytest.fixture(scope="module")
def bench() -> Bench:
    return Bench()


def native_state(framework: str, spec: Any = TINY, values: bool = False) -> dict[str, Any]:
    """A freshly built model's state under native names (torch and Paddle state_dict, Flax variable paths);
    for Flax only shapes (`jax.ShapeDtypeStruct`) unless `values`."""
    if framework == "torch":
        return {k: v.numpy() for k, v in TorchResNet(spec).state_dict().items()}
    if framework == "paddle":
        return {k: v.numpy() for k, v in PaddleResNet(spec).state_dict().items()}
    if values:
        return flatten(explain_flax.seeded_model(spec, 0))
    return flax_shapes(spec)


def flax_shapes(spec: Any) -> dict[str, jax.ShapeDtypeStruct]:
    x = jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, spec.in_channels), jnp.float32)
    variables = jax.eval_shape(FlaxResNet(spec).init, jax.random.key(0), x)
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(variables).items()}


def rel_std(a: np.ndarray, expected: float) -> float:
    return abs(float(np.std(a)) / expected - 1.0)


# ---------------------------------------------------------------- layout

def test_activation_layout(bench: Bench) -> None:
    x = bench.x
    torch_stages = TorchResNet(TINY).eval().forward_stages(torch.from_numpy(x))
    paddle_model = PaddleResNet(TINY)
    paddle_model.eval()
    paddle_stages = paddle_model.forward_stages(paddle.to_tensor(x))
    variables = traverse_util.unflatten_dict(flax_shapes(TINY), sep="/")
    _, flax_stages = jax.eval_shape(FlaxResNet(TINY).apply, variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    n, c, h, w = torch_stages["layer1"].shape
    assert (n, c) == (len(x), TINY.widths[0]) and h == w
    assert tuple(paddle_stages["layer1"].shape) == (n, c, h, w)
    assert flax_stages["layer1"].shape == (n, h, w, c)
    # the Flax adapter converts at its boundary: NCHW in, NCHW out, equal to the oracle
    adapter = bench.adapter("flax")
    adapter.load(bench.weights)
    out = adapter.forward(x)
    assert out["layer1"].shape == (n, c, h, w)
    assert compare(out["logits"], bench.eval_reference["logits"], 0).max_rel < tolerance("eval")


def test_flax_rejects_nchw(bench: Bench) -> None:
    adapter = bench.adapter("flax")
    with pytest.raises(flax_errors.ScopeParamShapeError, match="conv1"):
        adapter.model.apply(adapter.variables, jnp.asarray(bench.x))


# ---------------------------------------------------------------- weights

def test_native_weight_layouts() -> None:
    spec = TINY.replace(num_classes=10)  # layer2.0.conv1: 8 -> 16 channels; fc: 32 -> 10
    out, inp = 16, 8
    torch_state, paddle_state, flax_state = (native_state(fw, spec) for fw in FRAMEWORKS)
    assert torch_state["layer2.0.conv1.weight"].shape == (out, inp, 3, 3)
    assert paddle_state["bb_1_0.conv0._conv.weight"].shape == (out, inp, 3, 3)
    assert flax_state["params/layer2_0/conv1/kernel"].shape == (3, 3, inp, out)
    assert torch_state["fc.weight"].shape == (10, 32)
    assert paddle_state["out.weight"].shape == (32, 10)
    assert flax_state["params/fc/kernel"].shape == (32, 10)
    # y = x W^T + b in torch, y = x W + b in Paddle
    x = np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(10, 32)).astype(np.float32)
    linear = paddle.nn.Linear(32, 10)
    linear.weight.set_value(w.T)
    linear.bias.set_value(np.zeros(10, np.float32))
    np.testing.assert_allclose(linear(paddle.to_tensor(x)).numpy(), x @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w)).numpy(),
                               x @ w.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", rules.NATIVE_FORMATS)
def test_rules_round_trip_exactly(fmt: str) -> None:
    weights = random_weights(TINY)
    native = rules.to_native(weights, TINY, fmt)
    back = rules.from_native(native, TINY, fmt, "test")
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    conv = rules.key_map(TINY, fmt)["layer2.0.conv1.weight"][1]
    fc = rules.key_map(TINY, fmt)["fc.weight"][1]
    a = np.arange(16 * 8 * 9).reshape(16, 8, 3, 3)
    expected_conv = a.transpose(2, 3, 1, 0) if fmt == "flax" else a
    assert np.array_equal(conv(a), expected_conv)
    assert np.array_equal(fc(a[:, :, 0, 0]), a[:, :, 0, 0] if fmt == "torch" else a[:, :, 0, 0].T)


@pytest.mark.parametrize("fmt", ["paddle", "flax"])
def test_untransposed_linear_is_refused(fmt: str) -> None:
    spec = TINY.replace(num_classes=10)
    weights = random_weights(spec)
    native = rules.to_native(weights, spec, fmt)
    native[rules.key_map(spec, fmt)["fc.weight"][0]] = weights["fc.weight"]  # [out, in], not transposed
    with pytest.raises(UserError, match="expected shape"):
        rules.from_native(native, spec, fmt, "naive port")


# ---------------------------------------------------------------- padding

def test_same_padding_with_stride_2() -> None:
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        torch.nn.Conv2d(2, 3, 3, stride=2, padding="same")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 2, 8, 8)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    conv = lambda padding: paddle.nn.functional.conv2d(  # noqa: E731
        paddle.to_tensor(x), paddle.to_tensor(w), stride=2, padding=padding).numpy()
    np.testing.assert_array_equal(conv("SAME"), conv([0, 1, 0, 1]))  # top, bottom, left, right
    assert np.abs(conv("SAME") - conv(1)).max() > 1e-1
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    variables = {"params": {"kernel": jnp.asarray(w.transpose(2, 3, 1, 0))}}
    flax_conv = lambda padding: nn.Conv(3, (3, 3), (2, 2), padding=padding, use_bias=False).apply(  # noqa: E731
        variables, x_nhwc)
    np.testing.assert_array_equal(flax_conv("SAME"), flax_conv(((0, 1), (0, 1))))
    assert np.abs(flax_conv("SAME") - flax_conv(((1, 1), (1, 1)))).max() > 1e-1


# ---------------------------------------------------------------- batch norm

def _one_bn_step(framework: str, momentum: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(running mean, running var) of the framework's own BatchNorm after one train step from (0, 1)."""
    if framework == "torch":
        bn = torch.nn.BatchNorm2d(x.shape[1], momentum=momentum).train()
        bn(torch.from_numpy(x))
        return bn.running_mean.numpy(), bn.running_var.numpy()
    if framework == "paddle":
        bn = paddle.nn.BatchNorm2D(x.shape[1], momentum=momentum)
        bn.train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bn(paddle.to_tensor(x))
        return bn._mean.numpy(), bn._variance.numpy()
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    layer = nn.BatchNorm(use_running_average=False, momentum=momentum)
    _, state = layer.apply(layer.init(jax.random.key(0), x_nhwc), x_nhwc, mutable=["batch_stats"])
    return np.asarray(state["batch_stats"]["mean"]), np.asarray(state["batch_stats"]["var"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bn_momentum_meaning(framework: str) -> None:
    x = np.random.default_rng(0).normal(1.0, 1.0, size=(4, 3, 5, 5)).astype(np.float32)
    mean, _ = _one_bn_step(framework, 0.25, x)
    new_weight = 0.25 if framework == "torch" else 0.75  # running mean starts at 0
    np.testing.assert_allclose(mean, new_weight * x.mean(axis=(0, 2, 3)), rtol=1e-5)


def test_bn_defaults() -> None:
    torch_args = inspect.signature(torch.nn.BatchNorm2d).parameters
    paddle_args = inspect.signature(paddle.nn.BatchNorm2D).parameters
    flax_args = inspect.signature(nn.BatchNorm).parameters
    assert torch_args["momentum"].default == 0.1 and "eps" in torch_args
    assert paddle_args["momentum"].default == 0.9 and "epsilon" in paddle_args
    assert flax_args["momentum"].default == 0.99 and "epsilon" in flax_args


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_running_stats_match_oracle(framework: str, bench: Bench) -> None:
    assert bench.correct_error(framework, "running_stats") < tolerance(TOLERANCE_KIND["running_stats"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_native_running_var_rule(framework: str) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)  # n = 8 per channel
    only_new = 1.0 if framework == "torch" else 0.0  # running var = the fed batch variance
    _, var = _one_bn_step(framework, only_new, x)
    ddof = 1 if framework == "torch" else 0
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3), ddof=ddof), rtol=1e-5)


@pytest.mark.parametrize("framework", ["paddle", "flax"])
def test_bn_mistakes_do_not_show_in_eval(framework: str, bench: Bench) -> None:
    naive = bench.spec.replace(bn_momentum=0.9, bn_running_var="native")  # both mistakes at once
    logits = load(framework).Adapter(naive, bench.weights).forward(bench.x)["logits"]
    assert compare(logits, bench.eval_reference["logits"], 0).max_rel < tolerance("eval")


# ---------------------------------------------------------------- pitfalls (every naive port of the guide)

@pytest.mark.parametrize("pitfall", PITFALLS, ids=lambda p: f"{p.framework}-{p.name}")
def test_pitfall(pitfall: Pitfall, bench: Bench) -> None:
    naive, correct = pitfall.errors(bench)
    assert naive > pitfall.threshold, f"the naive port is no longer wrong: {naive:.2e}"
    assert correct < pitfall.tolerance


def test_measured_figures_support_the_claims() -> None:
    """docs/differences.json, which the guide quotes, agrees with the claims these tests make."""
    tables = json.loads(FIGURES.read_text())["tables"]
    rows = tables["pitfalls"]["rows"]
    assert sorted((r[1], r[0]) for r in rows) == sorted((p.framework, p.mistake) for p in PITFALLS)
    for mistake, _, naive, threshold, correct, tol in rows:
        assert naive > threshold and correct < tol, mistake
    for framework, _, _, first, steady, _ in tables["compilation"]["rows"]:
        assert first > steady, framework
    bf16 = dict(tables["mixed-precision"]["rows"])
    assert 1e-3 < bf16["torch"] < 5e-2 and 1e-3 < bf16["flax"] < 5e-2 and bf16["paddle"] < tolerance("eval")


# ---------------------------------------------------------------- naming

CLAIMED_NAMES = {
    "conv1.weight": {"torch": "conv1.weight", "paddle": "conv._conv.weight", "flax": "params/conv1/kernel"},
    "layer2.0.downsample.1.running_var": {"torch": "layer2.0.downsample.1.running_var",
                                          "paddle": "bb_1_0.short._batch_norm._variance",
                                          "flax": "batch_stats/layer2_0/downsample_bn/var"},
    "fc.weight": {"torch": "fc.weight", "paddle": "out.weight", "flax": "params/fc/kernel"},
    "fc.bias": {"torch": "fc.bias", "paddle": "out.bias", "flax": "params/fc/bias"},
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_native_names(framework: str) -> None:
    state = native_state(framework)
    table = rules.key_map(TINY, framework)
    for canonical, names in CLAIMED_NAMES.items():
        assert names[framework] in state and table[canonical][0] == names[framework]
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert (len(counters) > 0) == (framework == "torch")


def test_where_running_statistics_live() -> None:
    model = TorchResNet(TINY)
    assert "bn1.running_mean" in dict(model.named_buffers())
    assert "bn1.running_mean" not in dict(model.named_parameters())
    params = dict(PaddleResNet(TINY).named_parameters())
    assert params["conv._batch_norm._mean"].stop_gradient and params["conv._batch_norm._variance"].stop_gradient
    variables = traverse_util.unflatten_dict(flax_shapes(TINY), sep="/")
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["batch_stats"]["bn1"]) == {"mean", "var"} and "mean" not in variables["params"]["bn1"]


# ---------------------------------------------------------------- train/eval and state

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


# ---------------------------------------------------------------- initialisation

def _init_weights(framework: str, spec: Any) -> dict[str, np.ndarray]:
    """Canonical view of a freshly initialised model."""
    return rules.from_native(native_state(framework, spec, values=True), spec, framework, "fresh model")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_conv_init_scale(framework: str) -> None:
    w = _init_weights(framework, INIT_SPEC)["layer4.0.conv1.weight"]  # 3x3, 8 -> 32: fan_in 72, fan_out 288
    fan = w.shape[1] * 9 if framework == "paddle" else w.shape[0] * 9
    assert rel_std(w, np.sqrt(2.0 / fan)) < 0.05


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_classifier_init(framework: str) -> None:
    spec = INIT_SPEC
    weights = _init_weights(framework, spec)
    w, b = weights["fc.weight"], weights["fc.bias"]
    bound = 1.0 / np.sqrt(spec.feature_dim)
    if framework == "flax":  # lecun_normal: a (truncated) normal with std 1/sqrt(fan_in)
        assert rel_std(w, bound) < 0.1 and np.abs(w).max() > bound
    else:  # uniform in +-bound: std bound / sqrt(3)
        assert rel_std(w, bound / np.sqrt(3)) < 0.1 and np.abs(w).max() <= bound
    if framework == "torch":
        assert 0 < np.abs(b).max() <= bound
    else:
        assert not b.any()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bn_init(framework: str) -> None:
    weights = _init_weights(framework, INIT_SPEC)
    assert (weights["bn1.weight"] == 1).all() and (weights["bn1.bias"] == 0).all()
    assert (weights["bn1.running_mean"] == 0).all() and (weights["bn1.running_var"] == 1).all()


# ---------------------------------------------------------------- autograd

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
    first, second = grad(params), grad(params)
    np.testing.assert_array_equal(first["params"]["bias"], second["params"]["bias"])


# ---------------------------------------------------------------- optimizer

LR, MU, WD = 0.1, 0.9, 0.05
P0 = np.array([1.0, -2.0, 0.5], np.float32)
GRADS = np.array([[0.3, -0.1, 0.2], [0.1, 0.4, -0.3], [-0.2, 0.2, 0.1]], np.float32)


def sgd_reference(decay_scaled_by_lr: bool = True) -> np.ndarray:
    """b = mu b + (g + wd p); p -= lr b, in float64 (or with decay outside the lr scaling)."""
    p, b = P0.astype(np.float64), np.zeros(3)
    for g in GRADS:
        if decay_scaled_by_lr:
            b = MU * b + g + WD * p
            p = p - LR * b
        else:
            b = MU * b + g
            p = p - LR * b - WD * p
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
    np.testing.assert_allclose(sgd_native(framework), sgd_reference(), rtol=1e-6)


def test_optax_chain_order_matters() -> None:
    decay_after = _optax_steps(optax.chain(optax.sgd(LR, MU), optax.add_decayed_weights(WD)))
    # add_decayed_weights adds wd * p to the *update*, which apply_updates adds: p += -lr b + wd p
    p, b = P0.astype(np.float64), np.zeros(3)
    for g in GRADS:
        b = MU * b + g
        p = p - LR * b + WD * p
    np.testing.assert_allclose(decay_after, p, rtol=1e-6)
    assert np.abs(decay_after - sgd_reference()).max() > 1e-2


# ---------------------------------------------------------------- compilation

def _compiled_runs(framework: str, bench: Bench) -> dict[str, Any]:
    """Compile the tiny model, call it at batch 4 twice, then at batches 2 and 3; count compilations."""
    x4 = bench.x
    if framework == "torch":
        graphs: list[object] = []

        def counting_backend(gm: torch.fx.GraphModule, example_inputs: list) -> Any:
            graphs.append(gm)
            return gm.forward

        model = load("torch").Adapter(TINY, bench.weights).model
        fn = explain_torch.compile_model(model, backend=counting_backend)
        call = lambda x: fn(torch.from_numpy(x)).detach().numpy()  # noqa: E731
        count = lambda: len(graphs)  # noqa: E731
    elif framework == "paddle":
        fn = explain_paddle.compile_model(load("paddle").Adapter(TINY, bench.weights).model)
        call = lambda x: fn(paddle.to_tensor(x)).numpy()  # noqa: E731
        count = lambda: len(fn.forward.program_cache)  # noqa: E731
    else:
        adapter = load("flax").Adapter(TINY, bench.weights)
        fn = explain_flax.compile_model(adapter.model)
        call = lambda x: np.asarray(fn(adapter.variables, jnp.asarray(x.transpose(0, 2, 3, 1)))[0])  # noqa: E731
        count = lambda: fn._cache_size()  # noqa: E731
    times, counts, outs = [], [], []
    with torch.no_grad(), paddle.no_grad():
        for x in (x4, x4, x4[:2], x4[:3]):
            start = time.perf_counter()
            outs.append(call(x))
            times.append(time.perf_counter() - start)
            counts.append(count())
    return {"times": times, "counts": counts, "logits": outs[0]}


@pytest.fixture(scope="module")
def compiled_runs(bench: Bench) -> dict[str, dict[str, Any]]:
    return {fw: _compiled_runs(fw, bench) for fw in FRAMEWORKS}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_first_call_compiles(framework: str, compiled_runs: dict[str, dict[str, Any]], bench: Bench) -> None:
    run = compiled_runs[framework]
    assert run["counts"][:2] == [1, 1]  # compiled on the first call, reused on the second
    assert run["times"][0] > run["times"][1]
    assert compare(run["logits"], bench.eval_reference["logits"], 0).max_rel < tolerance("eval")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_new_shapes_recompile(framework: str, compiled_runs: dict[str, dict[str, Any]]) -> None:
    expected = [1, 1, 2, 2] if framework == "torch" else [1, 1, 2, 3]  # torch: batch size marked dynamic
    assert compiled_runs[framework]["counts"] == expected


def test_what_compilation_returns(bench: Bench) -> None:
    model = TorchResNet(TINY)
    assert explain_torch.compile_model(model) is not model and type(model.forward).__name__ == "method"
    layer = PaddleResNet(TINY)
    assert explain_paddle.compile_model(layer) is layer
    assert type(layer.forward).__name__ == "ASTStaticFunction"  # the original object is now static
    flax_model = FlaxResNet(TINY)
    assert explain_flax.compile_model(flax_model) is not flax_model.apply and callable(flax_model.apply)


# ---------------------------------------------------------------- mixed precision

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bf16_paths(framework: str, bench: Bench) -> None:
    adapter = load(framework).Adapter(TINY, bench.weights)
    if framework == "torch":
        logits = explain_torch.bf16_logits(adapter.model.eval(), torch.from_numpy(bench.x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert adapter.model.conv1(torch.from_numpy(bench.x)).dtype == torch.bfloat16
        assert logits.dtype == torch.bfloat16  # the classifier's matmul
        assert all(p.dtype == torch.float32 for p in adapter.model.parameters())
        logits = logits.float().numpy()
    elif framework == "paddle":
        if paddle.is_compiled_with_cuda():
            pytest.skip("the claim is about the CPU wheel")
        adapter.model.eval()
        with pytest.warns(UserWarning, match="amp_guard can only be enabled on CUDAPlace"):
            out = explain_paddle.bf16_logits(adapter.model, paddle.to_tensor(bench.x))
        assert out.dtype == paddle.float32 and all(p.dtype == paddle.float32 for p in adapter.model.parameters())
        np.testing.assert_array_equal(out.numpy(), adapter.forward(bench.x)["logits"])
        with pytest.raises(Exception, match="bfloat16"):  # no bf16 conv kernel on CPU
            paddle.nn.functional.conv2d(paddle.to_tensor(bench.x).astype("bfloat16"),
                                        paddle.ones([2, 3, 3, 3], dtype="bfloat16"))
        return
    else:
        x = jnp.asarray(bench.x.transpose(0, 2, 3, 1))
        out = jax.jit(explain_flax.bf16_logits, static_argnums=0)(adapter.model, adapter.variables, x)
        assert out.dtype == jnp.bfloat16
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(adapter.variables))
        conv = nn.Conv(4, (3, 3), dtype=jnp.bfloat16)  # or a compute dtype per module, float32 parameters
        conv_out, conv_vars = conv.init_with_output(jax.random.key(0), x[:1])
        assert conv_out.dtype == jnp.bfloat16 and conv_vars["params"]["kernel"].dtype == jnp.float32
        logits = np.asarray(out, np.float32)
    error = compare(logits, bench.eval_reference["logits"], 0).max_rel
    assert 1e-3 < error < 5e-2  # clearly bf16, clearly the same network


# ---------------------------------------------------------------- TF32 and determinism defaults

DEFAULTS_SCRIPT = """
import json, torch, jax
print(json.dumps({
    "torch_matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
    "torch_cudnn_tf32": torch.backends.cudnn.allow_tf32,
    "torch_deterministic": torch.are_deterministic_algorithms_enabled(),
    "torch_cudnn_benchmark": torch.backends.cudnn.benchmark,
    "jax_matmul_precision": jax.config.jax_default_matmul_precision,
}))
"""


@pytest.fixture(scope="module")
def fresh_defaults() -> dict[str, Any]:
    """torch's and JAX's switches as a fresh process sees them (other tests may have flipped them here)."""
    done = subprocess.run([sys.executable, "-c", DEFAULTS_SCRIPT], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def paddle_flag(name: str) -> Any:
    """A Paddle flag's value, or "absent" when this build does not define it."""
    try:
        return paddle.get_flags([name])[name]
    except ValueError:
        return "absent"


def test_tf32_defaults(fresh_defaults: dict[str, Any]) -> None:
    assert fresh_defaults["torch_matmul_tf32"] is False and fresh_defaults["torch_cudnn_tf32"] is True
    assert fresh_defaults["jax_matmul_precision"] is None
    assert "NVIDIA_TF32_OVERRIDE" in inspect.getsource(paddle.optimizer.lbfgs.check_tf32_override)
    if not paddle.is_compiled_with_cuda():
        assert paddle_flag("FLAGS_allow_tf32_cublas") == "absent" and paddle_flag("FLAGS_allow_tf32_cudnn") == "absent"


def test_full_fp32_precision_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    saved_torch = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    saved_jax = jax.config.jax_default_matmul_precision
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    try:
        for framework in FRAMEWORKS:
            load(framework, "demos").full_fp32_precision()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert jax.config.jax_default_matmul_precision == "highest"
        assert explain_paddle.os.environ["NVIDIA_TF32_OVERRIDE"] == "0"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_torch
        jax.config.update("jax_default_matmul_precision", saved_jax)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_seeded_init_is_reproducible(framework: str) -> None:
    def weights(seed: int) -> dict[str, np.ndarray]:
        model = load(framework, "demos").seeded_model(INIT_SPEC, seed)
        if framework == "flax":
            return flatten(model)
        return {k: v.numpy() for k, v in model.state_dict().items()}

    first, again, other = weights(3), weights(3), weights(4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first[next(iter(first))], other[next(iter(other))])


def test_global_generators_are_shared() -> None:
    seeded = explain_torch.seeded_model(INIT_SPEC, 3).conv1.weight
    torch.manual_seed(3)
    torch.rand(1)  # anyone else drawing first
    assert not torch.equal(TorchResNet(INIT_SPEC).conv1.weight, seeded)
    seeded_paddle = explain_paddle.seeded_model(INIT_SPEC, 3).conv._conv.weight.numpy()
    paddle.seed(3)
    paddle.rand([1])
    assert not np.array_equal(PaddleResNet(INIT_SPEC).conv._conv.weight.numpy(), seeded_paddle)
    first = explain_flax.seeded_model(INIT_SPEC, 3)
    jax.random.normal(jax.random.key(3), (1,))  # draws nothing from anyone else's key
    np.testing.assert_array_equal(flatten(explain_flax.seeded_model(INIT_SPEC, 3))["params/conv1/kernel"],
                                  flatten(first)["params/conv1/kernel"])


def test_deterministic_switches(fresh_defaults: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert fresh_defaults["torch_deterministic"] is False and fresh_defaults["torch_cudnn_benchmark"] is False
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    monkeypatch.setenv("XLA_FLAGS", "")
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        explain_torch.deterministic_kernels()
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
    explain_flax.deterministic_kernels()
    assert "--xla_gpu_deterministic_ops=true" in explain_flax.os.environ["XLA_FLAGS"]
    if not paddle.is_compiled_with_cuda():
        assert paddle_flag("FLAGS_cudnn_deterministic") == "absent"
        explain_paddle.deterministic_kernels()  # a no-op on the CPU wheel, not an error


# ---------------------------------------------------------------- the residual block

def _flax_modules(spec: Any) -> dict[tuple[str, ...], nn.Module]:
    """Every Flax submodule called in a forward, by path (the model builds them lazily)."""
    seen: dict[tuple[str, ...], nn.Module] = {}

    def record(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        seen[context.module.path] = context.module
        return next_fun(*args, **kwargs)

    x = jnp.zeros((1, spec.input_size, spec.input_size, spec.in_channels))
    with nn.intercept_methods(record):
        jax.eval_shape(FlaxResNet(spec).init, jax.random.key(0), x)
    return seen


@pytest.mark.parametrize("spec", [TINY, TINY50], ids=lambda s: s.block)
def test_block_structure(spec: Any) -> None:
    names = BLOCK_CLASSES[spec.block]
    n_convs = 2 if spec.block == "basic" else 3
    first_3x3 = 0 if spec.block == "basic" else 1

    block = TorchResNet(spec).layer2[0]
    assert type(block).__name__ == names["torch"]
    convs = [getattr(block, f"conv{k}") for k in range(1, n_convs + 1)]
    assert all(hasattr(block, f"bn{k}") for k in range(1, n_convs + 1))
    assert [c.stride[0] for c in convs] == [2 if i == first_3x3 else 1 for i in range(n_convs)]
    assert convs[first_3x3].kernel_size == (3, 3)
    assert [type(m).__name__ for m in block.downsample] == ["Conv2d", "BatchNorm2d"]
    assert block.downsample[0].kernel_size == (1, 1)

    layer = getattr(PaddleResNet(spec), "bb_1_0")
    assert type(layer).__name__ == names["paddle"]
    pairs = [getattr(layer, f"conv{k}") for k in range(n_convs)]
    assert all(type(p).__name__ == "ConvBNLayer" and hasattr(p, "_batch_norm") for p in pairs)
    assert [p._conv._stride[0] for p in pairs] == [2 if i == first_3x3 else 1 for i in range(n_convs)]
    assert list(pairs[first_3x3]._conv._kernel_size) == [3, 3]
    assert type(layer.short).__name__ == "ConvBNLayer" and list(layer.short._conv._kernel_size) == [1, 1]

    modules = _flax_modules(spec)
    assert type(modules[("layer2_0",)]).__name__ == names["flax"]
    flax_convs = [modules[("layer2_0", f"conv{k}")] for k in range(1, n_convs + 1)]
    assert all(("layer2_0", f"bn{k}") in modules for k in range(1, n_convs + 1))
    strides = [c.strides if isinstance(c.strides, int) else c.strides[0] for c in flax_convs]
    assert strides == [2 if i == first_3x3 else 1 for i in range(n_convs)]
    assert tuple(flax_convs[first_3x3].kernel_size) == (3, 3)
    assert ("layer2_0", "downsample_conv") in modules and ("layer2_0", "downsample_bn") in modules
