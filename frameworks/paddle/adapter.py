"""The common surface over the Paddle model: canonical weights in and out, forward on NumPy."""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import paddle

from resnet_rosetta.common import rules
from resnet_rosetta.common.canonical import Weights, relu_sites
from resnet_rosetta.common.errors import Unsupported, UserError
from resnet_rosetta.common.precision import host_dtype
from resnet_rosetta.common.spec import ResNetSpec
from .model import ResNet

NATIVE_FORMAT = "paddle"


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp64": "float64"}


class Adapter:
    """A Paddle ResNet holding the given canonical weights (CPU unless `device` says otherwise).

    `dtype` bf16 / fp16 / fp64 casts parameters, buffers and inputs (`Layer.to(dtype=...)`): every
    layer then computes in that dtype, with whatever internal accumulation Paddle's kernels use.
    Batch norm's `epsilon` stays a float32 attribute even then (see `strict_spec`).
    """

    fmt = NATIVE_FORMAT  # the model's naming layout in the rule table (a user's model may have another)

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu",
                 dtype: str = "fp32") -> None:
        self.spec = spec
        self.dtype = DTYPES[dtype]
        self.host = host_dtype(dtype)  # the NumPy dtype of what comes back
        paddle.set_device(device)
        self.model = self.build_model()
        if dtype != "fp32":
            _require_kernels(self.dtype)
        if self.host == np.float64:  # float64 parameters take the weights exactly: cast first, then load
            self.model.to(dtype=self.dtype)
        self.load(weights)
        if dtype in ("bf16", "fp16"):  # loaded as float32, then rounded
            self.model.to(dtype=self.dtype)

    def build_model(self) -> paddle.nn.Layer:
        return ResNet(self.spec)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        native = {k: v.astype(self.host) if np.issubdtype(v.dtype, np.floating) else v
                  for k, v in rules.to_native(weights, self.spec, self.fmt).items()}
        # set_state_dict only warns on a shape mismatch and keeps the initial values: check first
        for key, param in self.model.state_dict().items():
            if key in native and tuple(native[key].shape) != tuple(param.shape):
                raise UserError(f"paddle model {self.spec.name}: key {key}: expected shape {tuple(param.shape)}, "
                                f"found {tuple(native[key].shape)}")
        missing, unexpected = self.model.set_state_dict(native)
        if missing or unexpected:
            raise UserError(f"paddle model {self.spec.name}: weights do not fit; missing: "
                            f"{', '.join(missing) or 'none'}; unexpected: {', '.join(unexpected) or 'none'}")

    def canonical_weights(self) -> Weights:
        native = {k: _numpy(v) for k, v in self.model.state_dict().items()}
        return rules.from_native(native, self.spec, self.fmt, "paddle model")

    def forward(self, x: np.ndarray, train: bool = False,
                feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Named stage outputs (NCHW NumPy) for an NCHW batch; train=True uses batch statistics.

        With `feed` (stage name -> array), every stage's input is replaced by the fed output of
        the stage before it (forward pre-hooks), so each stage is measured on its own.
        """
        self.model.train() if train else self.model.eval()
        hooks = []
        for layer, source in ([] if feed is None else _stage_inputs(self.model)):
            fed = self.tensor(feed[source])  # type: ignore[index]
            hooks.append(layer.register_forward_pre_hook(lambda _layer, _inputs, fed=fed: (fed,)))
        try:
            with paddle.no_grad():
                out = self.model.forward_stages(self.tensor(x))
        finally:
            for hook in hooks:
                hook.remove()
        return {k: _numpy(v) for k, v in out.items()}

    def tensor(self, a: np.ndarray) -> paddle.Tensor:
        """A float array as a fresh tensor in the compute dtype."""
        return paddle.to_tensor(np.array(a, dtype=self.host)).astype(self.dtype)

    def hook_gates(self, gates: dict[str, np.ndarray]) -> None:
        """From now on every forward records its ReLU branches into `gates`: per site
        (`canonical.relu_sites`, mapped to the model's layer names by the rule table) the bool mask
        `input > 0`, read by forward post-hooks on the layer feeding the ReLU (a `_batch_norm`, or a
        whole block, whose output is the ReLU's)."""
        layers = dict(self.model.named_sublayers())

        def hook(site: str):  # type: ignore[no-untyped-def]
            return lambda _layer, _inputs, out: gates.__setitem__(site, (out > 0).numpy())
        for site in relu_sites(self.spec):
            layers[rules.native_module(site, self.fmt, self.spec)].register_forward_post_hook(hook(site))


def _require_kernels(dtype: str) -> None:
    """Unsupported unless this build has a `dtype` conv2d kernel for the current device (Paddle 3.3 on
    CPU registers conv2d for float32 and float64 only)."""
    probe = paddle.ones([1, 1, 3, 3]).astype(dtype)
    try:
        paddle.nn.functional.conv2d(probe, paddle.ones([1, 1, 1, 1]).astype(dtype))
    except RuntimeError:
        raise Unsupported(f"paddle {paddle.__version__} has no {dtype} conv2d kernel on "
                          f"{paddle.get_device()}") from None


def _numpy(t: paddle.Tensor) -> np.ndarray:
    """float32 (float64, integer) NumPy: NumPy has no bfloat16."""
    return (t.astype("float32") if t.is_floating_point() and t.dtype != paddle.float64 else t).numpy()


def _stage_inputs(model: ResNet) -> list[tuple[paddle.nn.Layer, str]]:
    """(layer that starts a stage, name of the stage output it consumes): first blocks and `out`."""
    firsts = [(blocks[0], "stem" if stage == 1 else f"layer{stage - 1}")
              for stage, blocks in enumerate(model.stage_blocks, start=1)]
    return firsts + [(model.out, "pooled")]


def parity_numerics(seed: int = 0) -> dict[str, object]:
    """Deterministic cuDNN and no TF32 where this Paddle build has CUDA; returns what was set."""
    paddle.seed(seed)
    settings: dict[str, object] = {"version": paddle.__version__, "cuda_build": paddle.is_compiled_with_cuda()}
    if paddle.is_compiled_with_cuda():
        flags = {"FLAGS_cudnn_deterministic": True, "FLAGS_embedding_deterministic": 1}
        paddle.set_flags(flags)
        settings.update(flags)
    settings["NVIDIA_TF32_OVERRIDE"] = os.environ.get("NVIDIA_TF32_OVERRIDE", "unset")
    return settings
