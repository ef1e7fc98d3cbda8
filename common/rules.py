"""The one rule table that maps canonical weights to each framework's native names and layouts.

Reading this file is a lesson in itself: the same ResNet, four ways of naming and laying out
its tensors. Native state is a flat dict of NumPy arrays; nested trees (Flax) use "/" paths.

    canonical (torchvision)           torch        paddle (classic source)        paddle-vision      flax linen
    conv1.weight          OIHW        same         conv._conv.weight              same               params/conv1/kernel  HWIO
    bn1.running_var                   same         conv._batch_norm._variance     bn1._variance      batch_stats/bn1/var
    layer1.0.conv2.weight             same         bb_0_0.conv1._conv.weight      same               params/layer1_0/conv2/kernel
    layer2.0.downsample.0.weight      same         bb_1_0.short._conv.weight      same               params/layer2_0/downsample_conv/kernel
    fc.weight             [out, in]   same         out.weight [in, out]           fc.weight [in,out] params/fc/kernel [in, out]

ResNet-D (stem "deep", downsample "avg") takes timm's names as canonical; Paddle follows the classic
vd source (three stem ConvBNLayers `conv1_1..conv1_3`, the pool inside `short`), Flax mirrors timm:
    conv1.0.weight  (conv1.1 its BN)  same         conv1_1._conv.weight           (none)             params/conv1_0/kernel
    conv1.6.weight, bn1.weight        same         conv1_3._conv, ._batch_norm    (none)             params/conv1_6, bn1
    layer2.0.downsample.1.weight      same         bb_1_0.short._conv.weight      (none)             params/layer2_0/downsample_conv/kernel

Peers' layouts are rows of the same tables (Hugging Face `hf`, PaddleClas `paddleclas`; timm's is
torch's). Conversions are pure NumPy and exact (transposes only), so round trips are bit-identical.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import numpy as np

from .canonical import Weights, canonical_modules, canonical_shapes, few_keys
from .errors import UserError
from .spec import ResNetSpec, downsample_names, stem_convs

Layout = Callable[[np.ndarray], np.ndarray]


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _t(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


def _oihw_to_hwio(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(2, 3, 1, 0))


def _hwio_to_oihw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(3, 2, 0, 1))


# canonical leaf -> per format: (native leaf template, canonical->native layout, native->canonical layout).
# "{m}" is the native module path; Flax puts the collection in front of it.
LEAF_RULES: dict[tuple[str, str], dict[str, tuple[str, Layout, Layout]]] = {
    ("conv", "weight"): {
        "torch": ("{m}.weight", _same, _same),
        "hf": ("{m}.weight", _same, _same),
        "paddle": ("{m}.weight", _same, _same),
        "paddleclas": ("{m}.weight", _same, _same),
        "paddle-vision": ("{m}.weight", _same, _same),
        "flax": ("params/{m}/kernel", _oihw_to_hwio, _hwio_to_oihw),
    },
    ("bn", "weight"): {
        "torch": ("{m}.weight", _same, _same),
        "hf": ("{m}.weight", _same, _same),
        "paddle": ("{m}.weight", _same, _same),
        "paddleclas": ("{m}.weight", _same, _same),
        "paddle-vision": ("{m}.weight", _same, _same),
        "flax": ("params/{m}/scale", _same, _same),
    },
    ("bn", "bias"): {
        "torch": ("{m}.bias", _same, _same),
        "hf": ("{m}.bias", _same, _same),
        "paddle": ("{m}.bias", _same, _same),
        "paddleclas": ("{m}.bias", _same, _same),
        "paddle-vision": ("{m}.bias", _same, _same),
        "flax": ("params/{m}/bias", _same, _same),
    },
    ("bn", "running_mean"): {
        "torch": ("{m}.running_mean", _same, _same),
        "hf": ("{m}.running_mean", _same, _same),
        "paddle": ("{m}._mean", _same, _same),
        "paddleclas": ("{m}._mean", _same, _same),
        "paddle-vision": ("{m}._mean", _same, _same),
        "flax": ("batch_stats/{m}/mean", _same, _same),
    },
    ("bn", "running_var"): {
        "torch": ("{m}.running_var", _same, _same),
        "hf": ("{m}.running_var", _same, _same),
        "paddle": ("{m}._variance", _same, _same),
        "paddleclas": ("{m}._variance", _same, _same),
        "paddle-vision": ("{m}._variance", _same, _same),
        "flax": ("batch_stats/{m}/var", _same, _same),
    },
    ("fc", "weight"): {
        "torch": ("{m}.weight", _same, _same),
        "hf": ("{m}.weight", _same, _same),
        "paddle": ("{m}.weight", _t, _t),
        "paddleclas": ("{m}.weight", _t, _t),
        "paddle-vision": ("{m}.weight", _t, _t),
        "flax": ("params/{m}/kernel", _t, _t),
    },
    ("fc", "bias"): {
        "torch": ("{m}.bias", _same, _same),
        "hf": ("{m}.bias", _same, _same),
        "paddle": ("{m}.bias", _same, _same),
        "paddleclas": ("{m}.bias", _same, _same),
        "paddle-vision": ("{m}.bias", _same, _same),
        "flax": ("params/{m}/bias", _same, _same),
    },
}

_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(.+)$")
_BLOCK_ITSELF = re.compile(r"^layer(\d+)\.(\d+)$")


def _paddle_module(path: str, spec: ResNetSpec) -> str:
    """Classic Paddle ResNet names: ConvBNLayer(_conv, _batch_norm), blocks bb_{stage}_{i}, head `out`;
    the stem is one ConvBNLayer `conv`, or the vd source's three `conv1_1..conv1_3` for a deep stem."""
    if path == "fc":
        return "out"
    stem = stem_convs(spec)
    for i, c in enumerate(stem, start=1):
        layer = "conv" if len(stem) == 1 else f"conv1_{i}"
        if path in (c.conv, c.bn):
            return f"{layer}._conv" if path == c.conv else f"{layer}._batch_norm"
    if whole := _BLOCK_ITSELF.match(path):
        return f"bb_{int(whole[1]) - 1}_{whole[2]}"
    m = _BLOCK.match(path)
    assert m, path
    block = f"bb_{int(m[1]) - 1}_{m[2]}"
    inner = dict(zip(downsample_names(spec), ("short._conv", "short._batch_norm"))).get(m[3])
    if inner is None:  # convK / bnK -> conv{K-1}._conv / conv{K-1}._batch_norm
        kind, k = m[3][:-1], int(m[3][-1])
        inner = f"conv{k - 1}." + ("_conv" if kind == "conv" else "_batch_norm")
    return f"{block}.{inner}"


def _flax_module(path: str, spec: ResNetSpec) -> str:
    """Flax submodule names mirror torchvision (a deep stem's `conv1.0` is `conv1_0`); a block is one
    module `layer{s}_{i}`, its shortcut `downsample_conv` + `downsample_bn` whatever the downsample."""
    if whole := _BLOCK_ITSELF.match(path):
        return f"layer{whole[1]}_{whole[2]}"
    m = _BLOCK.match(path)
    if not m:
        return path.replace(".", "_")
    inner = dict(zip(downsample_names(spec), ("downsample_conv", "downsample_bn"))).get(m[3], m[3])
    return f"layer{m[1]}_{m[2]}/{inner}"


def _as_canonical(path: str, spec: ResNetSpec) -> str:
    return path


def _hf_module(path: str, spec: ResNetSpec) -> str:
    """Hugging Face transformers' ResNetForImageClassification: a 7x7 embedder, stages of `layers`,
    each a `layer` list of ResNetConvLayer(convolution, normalization) and a `shortcut`; `classifier.1`.
    Its config has no deep stem, average-pool shortcut, small stem or groups: those specs are refused."""
    if spec.stem != "imagenet" or spec.downsample != "conv" or spec.groups != 1 or spec.width_per_group != 64:
        raise UserError(f"{spec.name}: Hugging Face's ResNet has only the 7x7 stem, 1x1-conv shortcuts and "
                        f"groups=1 (found stem={spec.stem}, downsample={spec.downsample}, groups={spec.groups}, "
                        f"width_per_group={spec.width_per_group})")
    if path == "fc":
        return "classifier.1"
    if path in ("conv1", "bn1"):
        return "resnet.embedder.embedder." + ("convolution" if path == "conv1" else "normalization")
    if whole := _BLOCK_ITSELF.match(path):
        return f"resnet.encoder.stages.{int(whole[1]) - 1}.layers.{whole[2]}"
    m = _BLOCK.match(path)
    assert m, path
    layer, kind = f"resnet.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}", m[3]
    if kind.startswith("downsample"):
        return f"{layer}.shortcut." + ("convolution" if kind == "downsample.0" else "normalization")
    return f"{layer}.layer.{int(kind[-1]) - 1}." + ("convolution" if kind.startswith("conv") else "normalization")


def _paddleclas_module(path: str, spec: ResNetSpec) -> str:
    """PaddleClas' ResNet (ppcls legendary_models/resnet.py): ConvBNLayer(conv, bn) everywhere, the
    stem a Sequential `stem.N` (one 7x7, or the vd 3x3 triple), blocks numbered across stages
    `blocks.N` with `conv0..conv2` and the shortcut `short` (its vd average pool holds no tensors)."""
    if path == "fc":
        return "fc"
    for i, c in enumerate(stem_convs(spec)):
        if path in (c.conv, c.bn):
            return f"stem.{i}." + ("conv" if path == c.conv else "bn")
    m = _BLOCK_ITSELF.match(path) or _BLOCK.match(path)
    assert m, path
    block = f"blocks.{sum(spec.depths[:int(m[1]) - 1]) + int(m[2])}"
    if m.re is _BLOCK_ITSELF:
        return block
    inner = dict(zip(downsample_names(spec), ("short.conv", "short.bn"))).get(m[3])
    if inner is None:
        inner = f"conv{int(m[3][-1]) - 1}." + ("conv" if m[3].startswith("conv") else "bn")
    return f"{block}.{inner}"


MODULE_RULES: dict[str, Callable[[str, ResNetSpec], str]] = {
    "torch": _as_canonical,
    "paddle": _paddle_module,
    "paddle-vision": _as_canonical,
    "flax": _flax_module,
    "hf": _hf_module,
    "paddleclas": _paddleclas_module,
}
# Where a format's residual blocks are: (stage, index) from a native key, stages 0- or 1-based as
# the format counts them; PaddleClas numbers blocks across stages (`blocks.N`, index only) and a
# stage starts at each block with a `short` conv.
BLOCK_KEYS: dict[str, re.Pattern[str]] = {
    "torch": re.compile(r"^layer(?P<stage>\d+)\.(?P<index>\d+)\."),
    "paddle": re.compile(r"^bb_(?P<stage>\d+)_(?P<index>\d+)\."),
    "paddle-vision": re.compile(r"^layer(?P<stage>\d+)\.(?P<index>\d+)\."),
    "flax": re.compile(r"^(?:params|batch_stats)/layer(?P<stage>\d+)_(?P<index>\d+)/"),
    "hf": re.compile(r"^resnet\.encoder\.stages\.(?P<stage>\d+)\.layers\.(?P<index>\d+)\."),
    "paddleclas": re.compile(r"^blocks\.(?P<index>\d+)\.(?P<short>short\.)?"),
}
RULE_FORMATS = tuple(MODULE_RULES)
NATIVE_FORMATS = ("torch", "paddle", "paddle-vision", "flax")  # the three frameworks' own; "hf" and
# "paddleclas" are peers' layouts (timm's is torch's: torchvision names, timm's for ResNet-D)


def native_module(path: str, fmt: str, spec: ResNetSpec) -> str:
    """The native module path of canonical module `path` (a layer, or a block `layerS.I`) of `spec`."""
    if fmt not in MODULE_RULES:
        raise UserError(f"unknown native format {fmt!r}; known: {', '.join(RULE_FORMATS)}")
    return MODULE_RULES[fmt](path, spec)


# Native tensors that carry no information in the canonical schema, per format.
IGNORED_NATIVE = {
    "torch": re.compile(r"(^|\.)num_batches_tracked$"),
    "paddle": re.compile(r"^StructuredToParameterName@@$"),
    "paddle-vision": re.compile(r"^StructuredToParameterName@@$"),
    "flax": re.compile(r"^$"),
    "hf": re.compile(r"(^|\.)num_batches_tracked$"),
    "paddleclas": re.compile(r"^StructuredToParameterName@@$"),
}


def key_map(spec: ResNetSpec, fmt: str) -> dict[str, tuple[str, Layout, Layout]]:
    """canonical key -> (native key, to_native, from_native) for every tensor of `spec`."""
    table = {}
    for path, kind, _ in canonical_modules(spec):
        module = native_module(path, fmt, spec)
        leaves = ("weight",) if kind == "conv" else (
            ("weight", "bias") if kind == "fc" else ("weight", "bias", "running_mean", "running_var"))
        for leaf in leaves:
            template, to_native, from_native = LEAF_RULES[(kind, leaf)][fmt]
            table[f"{path}.{leaf}"] = (template.format(m=module), to_native, from_native)
    return table


def to_native(weights: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str) -> Weights:
    """Canonical -> flat native dict (exact: layout transposes only)."""
    return {nk: to_n(weights[ck]) for ck, (nk, to_n, _) in key_map(spec, fmt).items()}


def from_native(native: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str, source: str) -> Weights:
    """Flat native dict -> canonical, strict: names missing, unexpected and misshapen keys."""
    table = key_map(spec, fmt)
    wanted = [nk for nk, _, _ in table.values()]  # execution order
    present = [k for k in native if not IGNORED_NATIVE[fmt].search(k)]
    missing = [k for k in wanted if k not in native]
    unexpected = sorted(set(present) - set(wanted))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {few_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {few_keys(unexpected)}")
        raise UserError(f"{source}: {fmt} weights do not match {spec.name}: " + "; ".join(parts))
    shapes = canonical_shapes(spec)
    out: Weights = {}
    for ck, (nk, _, from_n) in table.items():
        arr = np.asarray(native[nk])
        converted = from_n(arr) if arr.ndim == len(shapes[ck]) else arr
        if tuple(converted.shape) != shapes[ck]:
            raise UserError(f"{source}: key {nk}: expected shape {_native_shape(shapes[ck], table[ck][1])}, "
                            f"found {tuple(arr.shape)} (architecture {spec.name})")
        out[ck] = converted
    return out


def _native_shape(shape: tuple[int, ...], to_n: Layout) -> tuple[int, ...]:
    return tuple(to_n(np.empty(shape, dtype=np.uint8)).shape)


def detect_paddle_flavour(native: Mapping[str, np.ndarray], source: str = ".pdparams") -> str:
    """This suite's classic-source names (`conv._conv.weight`, or `conv1_1._conv.weight` for a deep
    stem), paddle.vision's (`conv1.weight`; `conv1.0.weight`, timm's names, for a deep stem) or
    PaddleClas' (`stem.0.conv.weight`)."""
    if "conv._conv.weight" in native or "conv1_1._conv.weight" in native:
        return "paddle"
    if "conv1.weight" in native or "conv1.0.weight" in native:
        return "paddle-vision"
    if "stem.0.conv.weight" in native:
        return "paddleclas"
    raise UserError(f"{source}: holds neither this suite's Paddle names (conv._conv.weight), paddle.vision's "
                    f"(conv1.weight) nor PaddleClas' ResNet's (stem.0.conv.weight); found keys "
                    f"{', '.join(list(map(str, native))[:4])}")


def fit_to_tensors(preset: ResNetSpec, native: Mapping[str, np.ndarray], fmt: str) -> ResNetSpec | None:
    """`preset` with num_classes and in_channels read off the classifier and stem tensors of
    `native` (those are data, not architecture); None when those tensors are absent."""
    probe = key_map(preset, fmt)
    fc_bias, conv1 = probe["fc.bias"][0], probe[f"{stem_convs(preset)[0].conv}.weight"][0]
    if fc_bias not in native or conv1 not in native or np.ndim(native[conv1]) != 4:
        return None
    in_axis = 2 if fmt == "flax" else 1  # HWIO vs OIHW
    return preset.replace(num_classes=int(np.shape(native[fc_bias])[0]),
                          in_channels=int(np.shape(native[conv1])[in_axis]))


def stage_taps(spec: ResNetSpec, fmt: str) -> dict[str, tuple[str, str]]:
    """Where each named stage output of a model written in `fmt`'s names can be read: stage ->
    ("input" | "output", native module). The stem is the input of the first block, stage k the
    output of its last block, `pooled` the classifier's input; `logits` is the model's own output.
    Lets a model written by someone else (parity --model) be measured stage by stage and named."""
    taps = {"stem": ("input", native_module("layer1.0", fmt, spec))}
    for k, depth in enumerate(spec.depths, start=1):
        taps[f"layer{k}"] = ("output", native_module(f"layer{k}.{depth - 1}", fmt, spec))
    taps["pooled"] = ("input", native_module("fc", fmt, spec))
    return taps


def feed_sites(spec: ResNetSpec, fmt: str) -> dict[str, str]:
    """Where `--stagewise` feeds a model written in `fmt`'s names: native module -> the stage output
    that replaces its input (each stage's first block takes the stage before it, the classifier
    `pooled`)."""
    sites = {native_module(f"layer{k}.0", fmt, spec): "stem" if k == 1 else f"layer{k - 1}"
             for k in range(1, len(spec.depths) + 1)}
    sites[native_module("fc", fmt, spec)] = "pooled"
    return sites
