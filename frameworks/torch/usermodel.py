"""A ResNet someone wrote in PyTorch (parity --model torch=module:factory), under the adapter's surface.

The model's tensors are matched through the rule table's layouts (torchvision / timm names, or
Hugging Face's); the named stage outputs are read with forward hooks at the modules
`rules.stage_taps` names (the stem is the first block's input, a stage its last block's output,
`pooled` the classifier's input), so the model needs no `forward_stages`, only `forward(x) -> logits`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from resnet_rosetta.common import rules
from resnet_rosetta.common.precision import run_bn_constants
from resnet_rosetta.common.spec import ResNetSpec
from .adapter import Adapter, _numpy, to_tensor

FORMATS = ("torch", "hf")  # the layouts a torch model may be written in


def native_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the model's state dict (num_batches_tracked included: the rule table
    ignores it)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, found {type(model).__name__}")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


class UserAdapter(Adapter):
    """The adapter's surface over a model built by `make()` whose tensors follow layout `fmt`."""

    def __init__(self, make: Callable[[], torch.nn.Module], fmt: str, spec: ResNetSpec,
                 weights: Mapping[str, np.ndarray], device: str = "cpu", dtype: str = "fp32") -> None:
        self.make, self.fmt = make, fmt
        super().__init__(spec, weights, device, dtype)
        if dtype == "fp64":
            exact_constants(self.model, spec)

    def build_model(self) -> torch.nn.Module:
        return self.make()

    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs, read by hooks; with `feed`, each stage's input replaced by the fed one."""
        self.model.train(train)
        out: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())
        hooks = []
        for stage, (side, name) in rules.stage_taps(self.spec, self.fmt).items():
            if side == "output":
                hooks.append(modules[name].register_forward_hook(
                    lambda _m, _a, o, stage=stage: out.__setitem__(stage, o.detach().clone())))
                continue
            hooks.append(modules[name].register_forward_pre_hook(  # before any feed's hook: the true input
                lambda _m, args, stage=stage: out.__setitem__(stage, args[0].detach().clone())))
        if feed is not None:
            for name, source in rules.feed_sites(self.spec, self.fmt).items():
                tensor = to_tensor(feed[source], self.device, self.dtype)
                hooks.append(modules[name].register_forward_pre_hook(lambda _m, _a, t=tensor: (t,)))
        try:
            with torch.no_grad():
                out["logits"] = self.model(to_tensor(x, self.device, self.dtype))
        finally:
            for hook in hooks:
                hook.remove()
        out["pooled"] = out["pooled"].reshape(out["pooled"].shape[0], -1)
        return {k: _numpy(out[k]) for k in ("stem", *(f"layer{k}" for k in range(1, len(self.spec.depths) + 1)),
                                             "pooled", "logits")}


def exact_constants(model: torch.nn.Module, spec: ResNetSpec) -> None:
    """fp64: a batch norm whose epsilon and momentum equal the run's once rounded as the run rounds
    them (`strict_spec`) takes the run's exact values, as this suite's ports do; any other value
    (a port's bug) is left as written."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            eps, momentum = run_bn_constants(spec, m.eps, m.momentum)
            if eps is not None:
                m.eps = eps
            if momentum is not None:
                m.momentum = momentum

