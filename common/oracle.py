"""A float64 NumPy ResNet: slow, exact, framework-neutral. The reference every framework is checked against.

It reads canonical weights directly (torchvision names, OIHW) and works in NCHW.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .canonical import Weights
from .spec import ResNetSpec, block_plan, downsample_names, has_max_pool, stem_convs
from .tolerance import KINK_MARGIN

Gates = dict[str, np.ndarray]  # ReLU site (see canonical.relu_sites) -> bool array, True where the input was > 0


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int = 1) -> np.ndarray:
    """NCHW x OIHW cross-correlation with symmetric zero padding, as torch.nn.Conv2d."""
    n, _, _, _ = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]  # N C OH OW KH KW
    oh, ow = win.shape[2:4]
    og = o // groups
    outs = [np.tensordot(win[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og], axes=([1, 4, 5], [1, 2, 3]))
            for g in range(groups)]  # each N OH OW O/g
    return np.concatenate(outs, axis=-1).transpose(0, 3, 1, 2).reshape(n, o, oh, ow)


def max_pool_3x3_s2(x: np.ndarray) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(4, 5))


def conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int,
                    groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of `conv2d` with respect to its input and its weight."""
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = dy.shape[2:]
    dw = np.concatenate([np.tensordot(dy[:, g * og:(g + 1) * og], win[:, g * cg:(g + 1) * cg],
                                      axes=([0, 2, 3], [0, 2, 3])) for g in range(groups)], axis=0)
    dxp = np.zeros_like(xp)
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + stride * (oh - 1) + 1, stride), slice(j, j + stride * (ow - 1) + 1, stride)
            for g in range(groups):  # dy (N, O/g, OH, OW) x w (O/g, C/g) -> (N, C/g, OH, OW)
                contrib = np.tensordot(dy[:, g * og:(g + 1) * og], w[g * og:(g + 1) * og, :, i, j], axes=([1], [0]))
                dxp[:, g * cg:(g + 1) * cg, rows, cols] += contrib.transpose(0, 3, 1, 2)
    h, wd = x.shape[2:]
    return dxp[:, :, pad:pad + h, pad:pad + wd], dw


def max_pool_3x3_s2_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Routes each output gradient to the first maximum of its window, as the frameworks do."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    oh, ow = dy.shape[2:]
    flat = win.reshape(*win.shape[:4], 9)
    first = flat.argmax(axis=-1)
    dxp = np.zeros_like(xp)
    for k in range(9):
        i, j = divmod(k, 3)
        dxp[:, :, i:i + 2 * (oh - 1) + 1:2, j:j + 2 * (ow - 1) + 1:2] += np.where(first == k, dy, 0.0)
    return dxp[:, :, 1:-1, 1:-1]


def _avg_pool_windows(h: int, w: int) -> tuple[tuple[int, int], np.ndarray]:
    """Zero padding (bottom, right) that makes 2x2/2 windows cover an h x w map in ceil mode, and
    the count of real (unpadded) elements in each window: the divisor with padding excluded."""
    pads = (h % 2, w % 2)
    ones = np.pad(np.ones((h, w)), ((0, pads[0]), (0, pads[1])))
    return pads, ones.reshape((h + pads[0]) // 2, 2, (w + pads[1]) // 2, 2).sum(axis=(1, 3))


def avg_pool_2x2_s2_ceil(x: np.ndarray) -> np.ndarray:
    """2x2 average pool, stride 2, ceil mode, padding excluded from the average, as
    torch.nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False): a trailing odd row or column
    is averaged over its real elements only."""
    n, c, h, w = x.shape
    (ph, pw), count = _avg_pool_windows(h, w)
    xp = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)))
    return xp.reshape(n, c, (h + ph) // 2, 2, (w + pw) // 2, 2).sum(axis=(3, 5)) / count


def avg_pool_2x2_s2_ceil_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each output gradient, divided by its window's count, to every real element of the window."""
    h, w = x.shape[2:]
    _, count = _avg_pool_windows(h, w)
    spread = np.repeat(np.repeat(dy / count, 2, axis=2), 2, axis=3)
    return spread[:, :, :h, :w]


@dataclass(frozen=True)
class GateMatch:
    """How a framework's ReLU branches compare with float64's on the same forward pass.

    A flip is an input within KINK_MARGIN (relative to its layer's max) of zero on which the
    framework took the other branch: fp32 rounding may do that, and the oracle then follows it.
    A conflict is a disagreement farther from zero: a real forward error, never followed.
    """

    flips: int = 0
    conflicts: int = 0
    widest: float = 0.0  # largest |input| / max |input| among the flips
    sites: tuple[str, ...] = ()  # where the flips and conflicts are, each once, first seen first
    farthest: float = 0.0  # largest |input| / max |input| among the conflicts
    farthest_abs: float = 0.0  # ... and the largest |input| among them
    forwards: tuple[str, ...] = ()  # the forward passes with a conflict (grad, step1, ...), when known

    def __add__(self, other: "GateMatch") -> "GateMatch":
        return GateMatch(self.flips + other.flips, self.conflicts + other.conflicts,
                         max(self.widest, other.widest), tuple(dict.fromkeys(self.sites + other.sites)),
                         max(self.farthest, other.farthest), max(self.farthest_abs, other.farthest_abs),
                         tuple(dict.fromkeys(self.forwards + other.forwards)))


def resolve_gate(x: np.ndarray, wanted: np.ndarray, site: str) -> tuple[np.ndarray, GateMatch]:
    """The ReLU gate of float64 input `x`, taking the framework's branch (`wanted`) wherever `x` is
    within KINK_MARGIN of zero; and how the two differed."""
    own = x > 0
    if wanted.shape != x.shape:
        raise ValueError(f"ReLU gates of {site}: shape {wanted.shape}, expected {x.shape}")
    scale = float(np.max(np.abs(x)))
    near = np.abs(x) <= KINK_MARGIN * scale
    wanted = wanted.astype(bool)
    differ = wanted != own
    flips, conflicts = differ & near, differ & ~near
    if not (flips.any() or conflicts.any()):
        return own, GateMatch()
    widest = float(np.max(np.abs(x[flips])) / scale) if flips.any() else 0.0
    far = float(np.max(np.abs(x[conflicts]))) if conflicts.any() else 0.0
    return np.where(near, wanted, own), GateMatch(int(flips.sum()), int(conflicts.sum()), widest, (site,),
                                                  far / scale, far)


class _Tape:
    """Reverse-mode bookkeeping: each op records how to push its output gradient to its inputs."""

    def __init__(self) -> None:
        self.ops: list[tuple[np.ndarray, Callable[[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]]] = []
        self.param_grads: dict[str, np.ndarray] = {}

    def record(self, out: np.ndarray, backward: Callable[[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]) -> None:
        self.ops.append((out, backward))

    def add_param_grad(self, name: str, grad: np.ndarray) -> None:
        self.param_grads[name] = self.param_grads.get(name, 0.0) + grad

    def backward(self, out: np.ndarray, grad: np.ndarray) -> None:
        grads = {id(out): grad}
        for node, push in reversed(self.ops):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            for inp, g_in in push(g):
                grads[id(inp)] = grads[id(inp)] + g_in if id(inp) in grads else g_in


class Oracle:
    """Forward pass of `spec` in float64, eval or train-mode batch norm, with named stage outputs,
    and its exact backward pass (`loss_and_grads`), written out op by op in NumPy.

    In train mode the running statistics are updated in `self.weights` with the spec's momentum
    convention (weight of the new batch) and its running-variance rule.
    """

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray]) -> None:
        self.spec = spec
        self.weights: Weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self._tape: _Tape | None = None
        self._follow: Gates = {}  # a framework's ReLU branches to follow near the kinks (loss_and_grads)
        self._follow_kinks = True  # False: only compare them with float64's (gate_match), never follow
        self.gates: Gates = {}  # the branches the last loss_and_grads took, per site
        self.gate_match = GateMatch()  # how they differed from float64's, after the last loss_and_grads

    def _bn(self, x: np.ndarray, name: str, train: bool) -> np.ndarray:
        w = self.weights
        if train:
            mean = x.mean(axis=(0, 2, 3))
            var = x.var(axis=(0, 2, 3))
            n = x.size // x.shape[1]
            unbiased = var * n / (n - 1)
            m = self.spec.bn_momentum
            feed = var if self.spec.bn_running_var == "biased" else unbiased
            w[f"{name}.running_mean"] = (1 - m) * w[f"{name}.running_mean"] + m * mean
            w[f"{name}.running_var"] = (1 - m) * w[f"{name}.running_var"] + m * feed
        else:
            mean, var = w[f"{name}.running_mean"], w[f"{name}.running_var"]
        inv_std = 1.0 / np.sqrt(var + self.spec.bn_eps)
        gamma = w[f"{name}.weight"]
        xhat = (x - mean[None, :, None, None]) * inv_std[None, :, None, None]
        y = xhat * gamma[None, :, None, None] + w[f"{name}.bias"][None, :, None, None]
        if self._tape is not None:
            def push(dy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
                n = x.size // x.shape[1]
                sum_dy, sum_dy_xhat = dy.sum(axis=(0, 2, 3)), (dy * xhat).sum(axis=(0, 2, 3))
                self._tape.add_param_grad(f"{name}.weight", sum_dy_xhat)
                self._tape.add_param_grad(f"{name}.bias", sum_dy)
                c = (gamma * inv_std / n)[None, :, None, None]
                dx = c * (n * dy - sum_dy[None, :, None, None] - xhat * sum_dy_xhat[None, :, None, None])
                return [(x, dx)]
            self._tape.record(y, push)
        return y

    def _conv(self, x: np.ndarray, name: str, stride: int, pad: int, groups: int = 1) -> np.ndarray:
        w = self.weights[f"{name}.weight"]
        y = conv2d(x, w, stride, pad, groups)
        if self._tape is not None:
            def push(dy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
                dx, dw = conv2d_backward(dy, x, w, stride, pad, groups)
                self._tape.add_param_grad(f"{name}.weight", dw)
                return [(x, dx)]
            self._tape.record(y, push)
        return y

    def _relu(self, x: np.ndarray, site: str) -> np.ndarray:
        """ReLU; its backward gates with float64's own branches, or near the kink with the
        framework's (see `loss_and_grads`). The forward value is float64's either way: within
        KINK_MARGIN of zero the two branches differ by less than fp32 forward error."""
        y = np.maximum(x, 0.0)
        if self._tape is not None:
            gate = x > 0
            if site in self._follow:
                followed, match = resolve_gate(x, self._follow[site], site)
                gate = followed if self._follow_kinks else gate
                self.gate_match += match
            self.gates[site] = gate
            self._tape.record(y, lambda dy: [(x, dy * gate)])
        return y

    def _add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        y = a + b
        if self._tape is not None:
            self._tape.record(y, lambda dy: [(a, dy), (b, dy)])
        return y

    def _max_pool(self, x: np.ndarray) -> np.ndarray:
        y = max_pool_3x3_s2(x)
        if self._tape is not None:
            self._tape.record(y, lambda dy: [(x, max_pool_3x3_s2_backward(dy, x))])
        return y

    def _avg_pool(self, x: np.ndarray) -> np.ndarray:
        y = avg_pool_2x2_s2_ceil(x)
        if self._tape is not None:
            self._tape.record(y, lambda dy: [(x, avg_pool_2x2_s2_ceil_backward(dy, x))])
        return y

    def _head(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global average pool and the fully connected classifier."""
        pooled = x.mean(axis=(2, 3))
        w, b = self.weights["fc.weight"], self.weights["fc.bias"]
        logits = pooled @ w.T + b
        if self._tape is not None:
            hw = x.shape[2] * x.shape[3]
            self._tape.record(pooled, lambda dp: [(x, np.broadcast_to(dp[:, :, None, None] / hw, x.shape))])

            def push(dl: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
                self._tape.add_param_grad("fc.weight", dl.T @ pooled)
                self._tape.add_param_grad("fc.bias", dl.sum(axis=0))
                return [(pooled, dl @ w)]
            self._tape.record(logits, push)
        return pooled, logits

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, gates: Mapping[str, np.ndarray] | None = None,
                       follow_kinks: bool = True) -> tuple[float, Weights]:
        """Mean cross-entropy of a train-mode forward and its gradient for every trainable parameter.

        Like a framework's training step, the forward updates the running statistics.
        With `gates` (a framework's ReLU branches on the same batch, per site), the backward takes
        the framework's branch at every ReLU input within KINK_MARGIN of zero: a gradient is
        discontinuous there, and fp32 may land on either side. `self.gate_match` says how many
        inputs that changed, and how many disagreed farther out (which are not followed). With
        `follow_kinks=False` (fp64 runs) float64's own branches are taken everywhere and `gates` are
        only counted.
        """
        self._tape = _Tape()
        self._follow, self.gate_match, self.gates = dict(gates or {}), GateMatch(), {}
        self._follow_kinks = follow_kinks
        try:
            logits = self.forward(x, train=True)["logits"]
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            n = len(y)
            loss = float(-log_p[np.arange(n), y].mean())
            dlogits = np.exp(log_p)
            dlogits[np.arange(n), y] -= 1.0
            self._tape.backward(logits, dlogits / n)
            grads = self._tape.param_grads
        finally:
            self._tape, self._follow = None, {}
        return loss, {k: grads[k] for k in self.weights if k in grads}

    def forward(self, x: np.ndarray, train: bool = False) -> dict[str, np.ndarray]:
        """Named stage outputs (stem, layer1..layer4, pooled, logits) for an NCHW batch."""
        spec = self.spec
        relu = self._relu
        x = np.asarray(x, np.float64)
        for c in stem_convs(spec):
            x = relu(self._bn(self._conv(x, c.conv, c.stride, c.padding), c.bn, train), c.bn)
        if has_max_pool(spec):
            x = self._max_pool(x)
        short_conv, short_bn = downsample_names(spec)
        out = {"stem": x}
        for b in block_plan(spec):
            pre = b.prefix
            if spec.block == "basic":
                y = relu(self._bn(self._conv(x, f"{pre}.conv1", b.stride, 1), f"{pre}.bn1", train), f"{pre}.bn1")
                y = self._bn(self._conv(y, f"{pre}.conv2", 1, 1), f"{pre}.bn2", train)
            else:
                y = relu(self._bn(self._conv(x, f"{pre}.conv1", 1, 0), f"{pre}.bn1", train), f"{pre}.bn1")
                y = relu(self._bn(self._conv(y, f"{pre}.conv2", b.stride, 1, spec.groups), f"{pre}.bn2", train),
                         f"{pre}.bn2")
                y = self._bn(self._conv(y, f"{pre}.conv3", 1, 0), f"{pre}.bn3", train)
            if b.downsample:
                x = self._avg_pool(x) if b.pool else x
                x = self._bn(self._conv(x, f"{pre}.{short_conv}", b.shortcut_stride, 0), f"{pre}.{short_bn}", train)
            x = relu(self._add(x, y), pre)
            out[f"layer{b.stage}"] = x
        out["pooled"], out["logits"] = self._head(x)
        return out
