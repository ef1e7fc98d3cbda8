"""The common surface over the PyTorch model: canonical weights in and out, forward on NumPy."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ...common import rules
from ...common.canonical import Weights
from ...common.spec import ResNetSpec
from .files import to_state_dict
from .model import ResNet

NATIVE_FORMAT = "torch"


class Adapter:
    """A torch ResNet holding the given canonical weights, on CPU unless `device` says otherwise."""

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.model = ResNet(spec).to(self.device)
        self.load(weights)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        native = rules.to_native(weights, self.spec, NATIVE_FORMAT)
        self.model.load_state_dict(to_state_dict(native), strict=True)

    def canonical_weights(self) -> Weights:
        # copies: .numpy() would alias the live parameters, which the optimizer updates in place
        native = {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}
        return rules.from_native(native, self.spec, NATIVE_FORMAT, "torch model")

    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs (NCHW NumPy) for an NCHW batch; train=True uses batch statistics.

        With `feed` (stage name -> array), every stage's input is replaced by the fed output of
        the stage before it (forward pre-hooks), so each stage is measured on its own.
        """
        self.model.train(train)
        hooks = []
        for module, source in ([] if feed is None else _stage_inputs(self.model)):
            fed = torch.from_numpy(np.ascontiguousarray(feed[source])).to(self.device)  # type: ignore[index]
            hooks.append(module.register_forward_pre_hook(lambda _m, _args, fed=fed: (fed,)))
        try:
            with torch.no_grad():
                out = self.model.forward_stages(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
        finally:
            for hook in hooks:
                hook.remove()
        return {k: v.detach().cpu().numpy() for k, v in out.items()}


def _stage_inputs(model: ResNet) -> list[tuple[torch.nn.Module, str]]:
    """(module that starts a stage, name of the stage output it consumes)."""
    n = len(model.spec.depths)
    pairs = [(getattr(model, f"layer{k}"), "stem" if k == 1 else f"layer{k - 1}") for k in range(1, n + 1)]
    return pairs + [(model.fc, "pooled")]


def parity_numerics(seed: int = 0) -> dict[str, object]:
    """Switch off TF32 and ask for deterministic kernels; returns what was set, for the report."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    return {"torch.backends.cuda.matmul.allow_tf32": False, "torch.backends.cudnn.allow_tf32": False,
            "torch.backends.cudnn.deterministic": True, "torch.use_deterministic_algorithms": True,
            "threads": torch.get_num_threads(), "version": torch.__version__}
