"""A ResNet someone wrote in Paddle (parity --model paddle=module:factory), under the adapter's surface.

The model's tensors are matched through the rule table's layouts (the classic Paddle source,
paddle.vision's or PaddleClas' names); the named stage outputs are read with forward hooks at the
layers `rules.stage_taps` names, so the model needs only `forward(x) -> logits`. Paddle keeps batch
norm's epsilon and momentum as float32 attributes, so a user's 1e-5 and 0.9 already are the values
an fp64 run uses (`strict_spec`).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import paddle

from resnet_rosetta.common import rules
from resnet_rosetta.common.spec import ResNetSpec
from .adapter import Adapter, _numpy


def native_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the model's state dict."""
    if not isinstance(model, paddle.nn.Layer):
        raise TypeError(f"expected a paddle.nn.Layer, found {type(model).__name__}")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


class UserAdapter(Adapter):
    """The adapter's surface over a model built by `make()` whose tensors follow layout `fmt`."""

    def __init__(self, make: Callable[[], paddle.nn.Layer], fmt: str, spec: ResNetSpec,
                 weights: Mapping[str, np.ndarray], device: str = "cpu", dtype: str = "fp32") -> None:
        self.make, self.fmt = make, fmt
        super().__init__(spec, weights, device, dtype)

    def build_model(self) -> paddle.nn.Layer:
        return self.make()

    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs, read by hooks; with `feed`, each stage's input replaced by the fed one."""
        self.model.train() if train else self.model.eval()
        out: dict[str, paddle.Tensor] = {}
        layers = dict(self.model.named_sublayers())
        hooks = []
        for stage, (side, name) in rules.stage_taps(self.spec, self.fmt).items():
            if side == "output":
                hooks.append(layers[name].register_forward_post_hook(
                    lambda _l, _i, o, stage=stage: out.__setitem__(stage, o.clone())))
            else:  # before any feed's hook: the true input
                hooks.append(layers[name].register_forward_pre_hook(
                    lambda _l, inputs, stage=stage: out.__setitem__(stage, inputs[0].clone())))
        if feed is not None:
            for name, source in rules.feed_sites(self.spec, self.fmt).items():
                tensor = self.tensor(feed[source])
                hooks.append(layers[name].register_forward_pre_hook(lambda _l, _i, t=tensor: (t,)))
        try:
            with paddle.no_grad():
                out["logits"] = self.model(self.tensor(x))
        finally:
            for hook in hooks:
                hook.remove()
        out["pooled"] = out["pooled"].reshape([out["pooled"].shape[0], -1])
        return {k: _numpy(out[k]) for k in ("stem", *(f"layer{k}" for k in range(1, len(self.spec.depths) + 1)),
                                             "pooled", "logits")}

