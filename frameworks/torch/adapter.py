"""The common surface over the PyTorch model: canonical weights in and out, forward on NumPy."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import Weights, relu_sites
from resnet_rosetta.common.precision import host_dtype
from resnet_rosetta.common.spec import ResNetSpec
from .files import to_state_dict
from .model import ResNet

NATIVE_FORMAT = "torch"


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}


class Adapter:
    """A torch ResNet holding the given canonical weights, on CPU unless `device` says otherwise
    ("gpu", the suite's name, is CUDA's first device; any torch device string is accepted).

    `dtype` bf16 / fp16 / fp64 casts parameters, buffers and inputs (`module.to(dtype)`): every
    layer then computes in that dtype, with whatever internal accumulation torch's kernels use.
    Outputs come back as float32 NumPy, or float64 for fp64.
    """

    fmt = NATIVE_FORMAT  # the model's naming layout in the rule table (a user's model may have another)

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu",
                 dtype: str = "fp32") -> None:
        self.spec = spec
        self.device = torch.device("cuda" if device == "gpu" else device)
        self.dtype = DTYPES[dtype]
        self.host = host_dtype(dtype)  # the NumPy dtype of what comes back
        self.model = self.build_model().to(self.device)
        self.load(weights)
        self.model.to(self.dtype)

    def build_model(self) -> torch.nn.Module:
        return ResNet(self.spec)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        native = rules.to_native(weights, self.spec, self.fmt)
        self.model.load_state_dict(to_state_dict(native), strict=True)

    def canonical_weights(self) -> Weights:
        # copies: .numpy() would alias the live parameters, which the optimizer updates in place
        native = {k: _numpy(v) for k, v in self.model.state_dict().items()}
        return rules.from_native(native, self.spec, self.fmt, "torch model")

    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs (NCHW NumPy) for an NCHW batch; train=True uses batch statistics.

        With `feed` (stage name -> array), every stage's input is replaced by the fed output of
        the stage before it (forward pre-hooks), so each stage is measured on its own.
        """
        self.model.train(train)
        hooks = []
        for module, source in ([] if feed is None else _stage_inputs(self.model)):
            fed = to_tensor(feed[source], self.device, self.dtype)  # type: ignore[index]
            hooks.append(module.register_forward_pre_hook(lambda _m, _args, fed=fed: (fed,)))
        try:
            with torch.no_grad():
                out = self.model.forward_stages(to_tensor(x, self.device, self.dtype))
        finally:
            for hook in hooks:
                hook.remove()
        return {k: _numpy(v) for k, v in out.items()}

    def hook_gates(self, gates: dict[str, np.ndarray]) -> None:
        """From now on every forward records its ReLU branches into `gates`: per site
        (`canonical.relu_sites`, mapped to the model's module names by the rule table) the bool mask
        `input > 0`, read by forward hooks on the module feeding the ReLU (a batch norm, before the
        in-place ReLU runs, or a whole block, whose output is the ReLU's)."""
        def hook(site: str):  # type: ignore[no-untyped-def]
            return lambda _module, _args, out: gates.__setitem__(site, (out > 0).cpu().numpy())
        for site in relu_sites(self.spec):
            self.model.get_submodule(rules.native_module(site, self.fmt, self.spec)).register_forward_hook(hook(site))


def to_tensor(a: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A fresh tensor: np.array copies into C-order strides, where np.ascontiguousarray would keep an
    odd stride on a size-1 axis (e.g. x[:, None]) that torch's CPU conv backward was seen to
    mishandle, corrupting the heap (with 1 OpenMP thread)."""
    source = np.array(a, dtype=np.int64 if dtype == torch.int64 else np.float64 if dtype == torch.float64
                      else np.float32)
    return torch.from_numpy(source).to(device, dtype)


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A float32 (float64, integer) NumPy copy: .numpy() would alias live parameters, and has no bf16."""
    t = t.detach().cpu()
    return (t.float() if t.is_floating_point() and t.dtype != torch.float64 else t).numpy().copy()


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
