"""common/oracle.py checked without any framework: each op against plain loops or hand-computed values,
each backward against its adjoint identity or finite differences in float64, and the whole network's
wiring against a composition of those checked ops, on nets of one or two tiny blocks (fast)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from resnet_rosetta.common import oracle as o
from resnet_rosetta.common.canonical import random_weights, relu_sites
from resnet_rosetta.common.spec import ResNetSpec, block_plan, has_max_pool, stem_convs
from resnet_rosetta.common.tolerance import KINK_MARGIN

SMALL = ResNetSpec("t_small", "basic", (1, 1), widths=(2, 3), stem="small", stem_width=2, in_channels=2,
                   num_classes=3, input_size=6)
IMNET = ResNetSpec("t_imnet", "bottleneck", (1, 1), widths=(2, 2), groups=2, stem_width=4, in_channels=1,
                   num_classes=2, input_size=9, bn_running_var="biased", bn_momentum=0.25)
SPECS = [SMALL, IMNET]


def _loop_conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    n, c, h, wd = x.shape
    o_, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o_, oh, ow))
    for b in range(n):
        for oc in range(o_):
            g = oc // (o_ // groups)
            for i in range(oh):
                for j in range(ow):
                    patch = xp[b, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[b, oc, i, j] = (patch * w[oc]).sum()
    return out


def test_conv_on_a_one_channel_image_by_hand() -> None:
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    assert o.conv2d(x, np.ones((1, 1, 2, 2)), 1, 0).tolist() == [[[[8.0, 12.0], [20.0, 24.0]]]]
    assert o.conv2d(x, np.eye(2).reshape(1, 1, 2, 2), 1, 1).tolist() == [[[[0.0, 1.0, 2.0, 0.0], [3.0, 4.0, 6.0, 2.0],
                                                                      [6.0, 10.0, 12.0, 5.0], [0.0, 6.0, 7.0, 8.0]]]]
    assert o.conv2d(x, np.ones((1, 1, 3, 3)), 2, 1).tolist() == [[[[8.0, 12.0], [20.0, 24.0]]]]  # corners of the zero-padded 5x5


@pytest.mark.parametrize("stride, pad, groups, size", [(1, 1, 1, 5), (2, 1, 2, 5), (2, 0, 1, 6), (1, 0, 3, 4)])
def test_conv_and_its_backward_match_loops_and_the_adjoint(stride: int, pad: int, groups: int, size: int) -> None:
    rng = np.random.default_rng(stride + 10 * pad + 100 * groups)
    x, w = rng.normal(size=(2, 6, size, size)), rng.normal(size=(6, 6 // groups, 3, 3))
    y = o.conv2d(x, w, stride, pad, groups)
    np.testing.assert_allclose(y, _loop_conv(x, w, stride, pad, groups), rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=y.shape)
    dx, dw = o.conv2d_backward(dy, x, w, stride, pad, groups)
    assert dx.shape == x.shape and dw.shape == w.shape
    for _ in range(2):  # <conv(x, w), dy> is linear in x and in w: its gradients are dx and dw exactly
        ex, ew = rng.normal(size=x.shape), rng.normal(size=w.shape)
        assert np.isclose((o.conv2d(ex, w, stride, pad, groups) * dy).sum(), (ex * dx).sum(), rtol=1e-10)
        assert np.isclose((o.conv2d(x, ew, stride, pad, groups) * dy).sum(), (ew * dw).sum(), rtol=1e-10)


def test_max_pool_pads_with_minus_infinity() -> None:
    x = -np.arange(1.0, 26.0).reshape(1, 1, 5, 5)  # every value negative: a zero pad would win
    assert o.max_pool_3x3_s2(x).tolist() == [[[[-1.0, -2.0, -4.0], [-6.0, -7.0, -9.0], [-16.0, -17.0, -19.0]]]]
    assert o.max_pool_3x3_s2(np.zeros((2, 3, 4, 4))).shape == (2, 3, 2, 2)


def test_max_pool_backward_routes_to_the_first_maximum() -> None:
    x = np.zeros((1, 1, 3, 3))  # ties everywhere: each window's gradient goes to its first cell in row-major order
    x[0, 0, 2, 2] = -1.0
    dx = o.max_pool_3x3_s2_backward(np.array([[[[1.0, 2.0], [4.0, 8.0]]]]), x)
    expected = np.zeros((3, 3))
    expected[0, 0] += 1.0  # window rows -1..1, cols -1..1
    expected[0, 1] += 2.0  # rows -1..1, cols 1..3
    expected[1, 0] += 4.0  # rows 1..3, cols -1..1
    expected[1, 1] += 8.0  # rows 1..3, cols 1..3 (x[2, 2] = -1 loses)
    assert dx[0, 0].tolist() == expected.tolist()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 6, 5))
    dy = rng.normal(size=o.max_pool_3x3_s2(x).shape)
    dx = o.max_pool_3x3_s2_backward(dy, x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    loops = np.zeros_like(xp)
    for b, ch, i, j in np.ndindex(*dy.shape):
        win = xp[b, ch, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
        r, s = np.unravel_index(np.argmax(win), (3, 3))
        loops[b, ch, 2 * i + r, 2 * j + s] += dy[b, ch, i, j]
    np.testing.assert_allclose(dx, loops[:, :, 1:-1, 1:-1], rtol=1e-14, atol=1e-15)


def test_resolve_gate_follows_only_near_the_kink() -> None:
    x = np.array([2.0, -1.0, 1e-3, -1.6e-3, 2e-3, 0.7, -2e-3, 0.0])  # margin: KINK_MARGIN * 2 = 2e-3
    assert KINK_MARGIN == 1e-3
    wanted = np.array([1, 1, 0, 1, 0, 1, 0, 1])
    gate, match = o.resolve_gate(x, wanted, "layer1.0")
    assert gate.tolist() == [True, False, False, True, False, True, False, True]
    assert match == o.GateMatch(flips=4, conflicts=1, widest=1e-3, sites=("layer1.0",), farthest=0.5, farthest_abs=1.0)
    own, same = o.resolve_gate(x, x > 0, "s")
    assert own.tolist() == (x > 0).tolist() and same == o.GateMatch()
    _, far = o.resolve_gate(x, np.array([1, 1, 1, 0, 1, 1, 0, 0]), "s")  # one conflict (-1.0), no flip
    assert far == o.GateMatch(0, 1, 0.0, ("s",), farthest=0.5, farthest_abs=1.0)
    for bad in (wanted[:7], np.ones(9), np.ones((2, 4))):
        with pytest.raises(ValueError, match=re.escape(f"ReLU gates of bn1: shape {bad.shape}, expected (8,)")):
            o.resolve_gate(x, bad, "bn1")
    assert o.GateMatch() == o.GateMatch(0, 0, 0.0, ())
    total = o.GateMatch(1, 2, 0.5, ("a", "b")) + o.GateMatch(3, 4, 0.25, ("b", "c"))
    assert total == o.GateMatch(4, 6, 0.5, ("a", "b", "c"))
    assert (o.GateMatch(0, 0, 0.1) + o.GateMatch(0, 0, 0.3)).widest == 0.3
    apart = o.GateMatch(0, 1, farthest=0.2, forwards=("step1",)) + o.GateMatch(0, 1, farthest=0.1, forwards=("grad",))
    assert (apart.farthest, apart.forwards) == (0.2, ("step1", "grad"))


def test_batch_norm_eval_and_train_on_a_small_tensor() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, size=(2, 2, 3, 3))
    w = {"b.weight": np.array([1.5, 0.5]), "b.bias": np.array([0.1, -0.2]),
         "b.running_mean": np.array([0.3, -0.4]), "b.running_var": np.array([0.8, 1.7])}
    spec = SMALL.replace(bn_eps=1e-3, bn_momentum=0.25)
    ev = o.Oracle(spec, w)._bn(x, "b", train=False)
    by_hand = (x - w["b.running_mean"][:, None, None]) / np.sqrt(w["b.running_var"][:, None, None] + 1e-3)
    np.testing.assert_allclose(ev, by_hand * w["b.weight"][:, None, None] + w["b.bias"][:, None, None], rtol=1e-13)
    for rule, factor in (("unbiased", 18 / 17), ("native", 18 / 17), ("biased", 1.0)):
        oracle = o.Oracle(spec.replace(bn_running_var=rule), w)
        tr = oracle._bn(x, "b", train=True)
        mean = x.mean(axis=(0, 2, 3))
        var = ((x - mean[:, None, None]) ** 2).mean(axis=(0, 2, 3))
        xhat = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
        np.testing.assert_allclose(tr, xhat * w["b.weight"][:, None, None] + w["b.bias"][:, None, None], rtol=1e-13)
        np.testing.assert_allclose(oracle.weights["b.running_mean"], 0.75 * w["b.running_mean"] + 0.25 * mean)
        np.testing.assert_allclose(oracle.weights["b.running_var"], 0.75 * w["b.running_var"] + 0.25 * var * factor)


def _composed(spec: ResNetSpec, w: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Eval forward composed from the ops checked above, written from torchvision's ResNet v1.5."""
    def bn(t: np.ndarray, name: str) -> np.ndarray:
        shape = (1, -1, 1, 1)
        return ((t - w[f"{name}.running_mean"].reshape(shape)) / np.sqrt(w[f"{name}.running_var"].reshape(shape)
                + spec.bn_eps) * w[f"{name}.weight"].reshape(shape) + w[f"{name}.bias"].reshape(shape))

    def cbr(t: np.ndarray, name: str, bn_name: str, stride: int, pad: int, groups: int = 1, act: bool = True) -> np.ndarray:
        out = bn(o.conv2d(t, w[f"{name}.weight"], stride, pad, groups), bn_name)
        return np.maximum(out, 0.0) if act else out

    (stem,) = stem_convs(spec)  # the one-conv stems ("imagenet", "small")
    t = cbr(x, stem.conv, stem.bn, stem.stride, stem.padding)
    out = {"stem": o.max_pool_3x3_s2(t) if has_max_pool(spec) else t}
    t = out["stem"]
    for b in block_plan(spec):
        q = b.prefix
        if spec.block == "basic":
            y = cbr(cbr(t, f"{q}.conv1", f"{q}.bn1", b.stride, 1), f"{q}.conv2", f"{q}.bn2", 1, 1, act=False)
        else:
            y = cbr(t, f"{q}.conv1", f"{q}.bn1", 1, 0)
            y = cbr(y, f"{q}.conv2", f"{q}.bn2", b.stride, 1, spec.groups)
            y = cbr(y, f"{q}.conv3", f"{q}.bn3", 1, 0, act=False)
        short = cbr(t, f"{q}.downsample.0", f"{q}.downsample.1", b.stride, 0, act=False) if b.downsample else t
        t = out[f"layer{b.stage}"] = np.maximum(y + short, 0.0)
    out["pooled"] = t.mean(axis=(2, 3))
    out["logits"] = out["pooled"] @ w["fc.weight"].T + w["fc.bias"]
    return out


def _case(spec: ResNetSpec) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, spec.in_channels, spec.input_size, spec.input_size))
    return random_weights(spec, seed=3, dtype=np.float64), x, np.array([1, 0])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_eval_forward_matches_the_composed_ops(spec: ResNetSpec) -> None:
    w, x, _ = _case(spec)
    got, want = o.Oracle(spec, w).forward(x), _composed(spec, w, x)
    assert list(got) == ["stem", "layer1", "layer2", "pooled", "logits"]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, err_msg=name)


def _train_loss(spec: ResNetSpec, w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of a train-mode forward, computed here from the logits alone."""
    logits = o.Oracle(spec, w).forward(x, train=True)["logits"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return float(-np.log(p[np.arange(len(y)), y] / p.sum(axis=1)).mean())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gradients_match_finite_differences(spec: ResNetSpec) -> None:
    w, x, y = _case(spec)
    oracle = o.Oracle(spec, w)
    loss, grads = oracle.loss_and_grads(x, y)
    assert np.isclose(loss, _train_loss(spec, w, x, y), rtol=1e-13)
    assert sorted(grads) == sorted(k for k in w if not k.endswith(("running_mean", "running_var")))
    assert not np.allclose(oracle.weights["bn1.running_mean"], w["bn1.running_mean"])  # train forward updated it
    assert list(oracle.gates) == relu_sites(spec) and oracle.gate_match == o.GateMatch()
    rng, eps = np.random.default_rng(0), 1e-6
    for key, grad in grads.items():  # a random direction inside each tensor, central differences
        d = rng.normal(size=grad.shape)
        plus, minus = dict(w), dict(w)
        plus[key], minus[key] = w[key] + eps * d, w[key] - eps * d
        numeric = (_train_loss(spec, plus, x, y) - _train_loss(spec, minus, x, y)) / (2 * eps)
        assert np.isclose(numeric, (grad * d).sum(), rtol=1e-5, atol=1e-9), key


def test_backward_follows_a_framework_gate_only_near_zero() -> None:
    w, x, y = _case(SMALL)
    pre = o.Oracle(SMALL, w)
    stem_in = pre._bn(pre._conv(x, "conv1", 1, 1), "bn1", True)  # the ReLU input at site bn1
    nearest = np.unravel_index(np.argmin(np.abs(stem_in)), stem_in.shape)
    w["bn1.bias"] = w["bn1.bias"].copy()
    w["bn1.bias"][nearest[1]] += 1e-9 - stem_in[nearest]  # that input now sits 1e-9 above the kink
    oracle = o.Oracle(SMALL, w)
    oracle.loss_and_grads(x, y)
    own = oracle.gates
    assert own["bn1"][nearest]
    far = (1, 1, 2, 3) if own["bn1"][1, 1, 2, 3] != own["bn1"][nearest] else (0, 0, 0, 0)
    flipped = own["bn1"].copy()
    flipped[nearest], flipped[far] = ~flipped[nearest], ~flipped[far]
    _, grads = oracle.loss_and_grads(x, y, gates={"bn1": flipped})
    assert oracle.gate_match.flips == 1 and oracle.gate_match.conflicts == 1 and oracle.gate_match.sites == ("bn1",)
    assert not oracle.gates["bn1"][nearest] and oracle.gates["bn1"][far] == own["bn1"][far]
    _, plain = o.Oracle(SMALL, w).loss_and_grads(x, y)
    assert not np.array_equal(grads["conv1.weight"], plain["conv1.weight"])
    assert oracle._tape is None and oracle._follow == {}
