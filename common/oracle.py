"""A float64 NumPy ResNet: slow, exact, framework-neutral. The reference every framework is checked against.

It reads canonical weights directly (torchvision names, OIHW) and works in NCHW.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .canonical import Weights
from .spec import ResNetSpec, block_plan, stem_geometry


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


class Oracle:
    """Forward pass of `spec` in float64, eval or train-mode batch norm, with named stage outputs.

    In train mode the running statistics are updated in `self.weights` with the spec's momentum
    convention (weight of the new batch) and its running-variance rule.
    """

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray]) -> None:
        self.spec = spec
        self.weights: Weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}

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
        scale = w[f"{name}.weight"] / np.sqrt(var + self.spec.bn_eps)
        shift = w[f"{name}.bias"] - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def _conv(self, x: np.ndarray, name: str, stride: int, pad: int, groups: int = 1) -> np.ndarray:
        return conv2d(x, self.weights[f"{name}.weight"], stride, pad, groups)

    def forward(self, x: np.ndarray, train: bool = False) -> dict[str, np.ndarray]:
        """Named stage outputs (stem, layer1..layer4, pooled, logits) for an NCHW batch."""
        spec = self.spec
        relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
        k, s, p = stem_geometry(spec)
        x = relu(self._bn(self._conv(np.asarray(x, np.float64), "conv1", s, p), "bn1", train))
        if spec.stem == "imagenet":
            x = max_pool_3x3_s2(x)
        out = {"stem": x}
        for b in block_plan(spec):
            pre = b.prefix
            if spec.block == "basic":
                y = relu(self._bn(self._conv(x, f"{pre}.conv1", b.stride, 1), f"{pre}.bn1", train))
                y = self._bn(self._conv(y, f"{pre}.conv2", 1, 1), f"{pre}.bn2", train)
            else:
                y = relu(self._bn(self._conv(x, f"{pre}.conv1", 1, 0), f"{pre}.bn1", train))
                y = relu(self._bn(self._conv(y, f"{pre}.conv2", b.stride, 1, spec.groups), f"{pre}.bn2", train))
                y = self._bn(self._conv(y, f"{pre}.conv3", 1, 0), f"{pre}.bn3", train)
            if b.downsample:
                x = self._bn(self._conv(x, f"{pre}.downsample.0", b.stride, 0), f"{pre}.downsample.1", train)
            x = relu(x + y)
            out[f"layer{b.stage}"] = x
        pooled = x.mean(axis=(2, 3))
        out["pooled"] = pooled
        out["logits"] = pooled @ self.weights["fc.weight"].T + self.weights["fc.bias"]
        return out
