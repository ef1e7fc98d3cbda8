"""The spec of a native state dict, read off its key names and tensor shapes: any combination of
block type, stage depths, widths, groups, stem and shortcut, not only the presets.

Depths come from the block keys (`rules.BLOCK_KEYS`); every hypothesis of block type, stem and
shortcut whose key names the rule table produces exactly is then sized from the tensors and
checked strictly (`rules.from_native`). Names that do not tell an average-pool shortcut from a
strided conv (classic Paddle, PaddleClas, Flax) take ResNet-D's convention: avg with a deep stem. A spec whose architecture equals a preset's takes the
preset (its name, input size); two such presets, or two surviving hypotheses, ask for --arch.
"""
from __future__ import annotations

import itertools
from collections import Counter
from typing import Mapping

import numpy as np

from . import rules
from .canonical import few_keys
from .errors import UserError
from .spec import EXPANSION, PRESETS, ResNetSpec, block_plan, downsample_names, stem_convs

ARCH_FIELDS = ("block", "depths", "widths", "groups", "width_per_group", "stem", "stem_width", "downsample")


def stage_depths(native: Mapping[str, np.ndarray], fmt: str) -> tuple[int, ...]:
    """Blocks per stage, from the block keys; () when there are none."""
    pattern = rules.BLOCK_KEYS[fmt]
    found = [m for k in native if (m := pattern.match(k))]
    if "stage" in pattern.groupindex:
        blocks = {(int(m["stage"]), int(m["index"])) for m in found}
        counts = Counter(stage for stage, _ in blocks)
        return tuple(counts[s] for s in sorted(counts))
    starts = sorted({int(m["index"]) for m in found if m["short"]} | {0})
    total = 1 + max((int(m["index"]) for m in found), default=-1)
    return tuple(b - a for a, b in zip(starts, starts[1:] + [total])) if total else ()


def _skeletons(depths: tuple[int, ...]) -> list[ResNetSpec]:
    """One spec per key-name layout: block type x stem x shortcut x (a projection in layer1.0 or not)."""
    out = []
    for block, stem, downsample, first_projects in itertools.product(
            ("basic", "bottleneck"), ("imagenet", "small", "deep"), ("conv", "avg"), (False, True)):
        stem_width = 2 if first_projects else 64 * EXPANSION[block]
        out.append(ResNetSpec("probe", block, depths, widths=(64,) * len(depths), stem=stem,
                              stem_width=stem_width, downsample=downsample))
    return out


def _sized(skeleton: ResNetSpec, native: Mapping[str, np.ndarray], fmt: str, source: str) -> ResNetSpec | None:
    """`skeleton` with widths, groups, stem width, classes and input channels read off the tensors;
    None when a shape contradicts the hypothesis (a 7x7 stem read as "small", a width that is no integer)."""
    table = rules.key_map(skeleton, fmt)

    def shape(canonical: str) -> tuple[int, ...]:
        native_key, _, from_n = table[canonical]
        arr = np.asarray(native[native_key])
        return tuple(from_n(arr).shape) if arr.ndim in (2, 4) else tuple(arr.shape)

    stem = stem_convs(skeleton)
    kernel = shape(f"{stem[0].conv}.weight")
    if len(kernel) != 4 or kernel[2] != {"imagenet": 7, "small": 3, "deep": 3}[skeleton.stem]:
        return None
    firsts = [b for b in block_plan(skeleton) if b.index == 0]
    last = "conv3" if skeleton.block == "bottleneck" else "conv2"
    outs = [shape(f"{b.prefix}.{last}.weight")[0] for b in firsts]
    if any(o % skeleton.expansion for o in outs):
        return None
    widths = tuple(o // skeleton.expansion for o in outs)
    groups, per_group = 1, 64
    if skeleton.block == "bottleneck":
        mid, mid_in = shape(f"{firsts[0].prefix}.conv2.weight")[:2]
        groups = mid // mid_in if mid_in and mid % mid_in == 0 else 0
        if not groups or (mid // groups * 64) % widths[0]:
            return None
        per_group = mid // groups * 64 // widths[0]
    first = block_plan(skeleton)[0]
    if first.downsample and widths[0] * skeleton.expansion == shape(f"{stem[-1].conv}.weight")[0]:
        where = table[f"{first.prefix}.{downsample_names(skeleton)[0]}.weight"][0]
        raise UserError(f"{source}: {where}: a 1x1 conv shortcut where the block's shape does not change "
                        "(PaddleClas' use_first_short_conv, in its ResNet18/34 and _vd); the spec cannot express it")
    try:
        return skeleton.replace(name="custom", widths=widths, groups=groups, width_per_group=per_group,
                                stem_width=shape(f"{stem[-1].conv}.weight")[0], in_channels=kernel[1],
                                num_classes=shape("fc.weight")[0])
    except UserError:
        return None


def named(spec: ResNetSpec) -> list[ResNetSpec]:
    """The presets whose architecture `spec` is (classes and input channels as read), or `spec` named by its structure."""
    same = [p.replace(num_classes=spec.num_classes, in_channels=spec.in_channels) for p in PRESETS
            if all(getattr(p, f) == getattr(spec, f) for f in ARCH_FIELDS)]
    if same:
        return same
    name = f"resnet_{spec.block}_{'-'.join(map(str, spec.depths))}"
    return [spec.replace(name=name + ("" if spec.stem == "imagenet" else f"_{spec.stem}")
                         + ("" if spec.downsample == "conv" else "_avgdown"))]


def infer_spec(native: Mapping[str, np.ndarray], fmt: str, source: str) -> ResNetSpec:
    """The one spec whose keys and shapes `native` holds; refuses naming what does not fit, or the candidates."""
    depths = stage_depths(native, fmt)
    if not depths:
        raise UserError(f"{source}: keys and shapes match no known architecture (no residual blocks found in "
                        f"{fmt} names); pass --arch NAME")
    present = {k for k in native if not rules.IGNORED_NATIVE[fmt].search(k)}
    layouts, nearest = [], None
    for skeleton in _skeletons(depths):
        try:
            names = {nk for nk, _, _ in rules.key_map(skeleton, fmt).values()}
        except UserError:  # a layout the format cannot hold (a deep stem in Hugging Face's)
            continue
        if names == present:
            layouts.append(skeleton)
        elif nearest is None or len(names ^ present) < len(nearest[0] ^ present):
            nearest = (names, skeleton)
    matches = []
    for skeleton in layouts:
        try:
            spec = _sized(skeleton, native, fmt, source)
        except (IndexError, ValueError, ZeroDivisionError):  # a tensor of the wrong rank: not this layout
            spec = None
        if spec is not None and spec not in matches:
            try:
                rules.from_native(native, spec, fmt, source)
            except UserError as exc:
                if len(layouts) == 1:
                    raise UserError(f"{exc}; pass --arch NAME") from None
                continue
            matches.append(spec)
    if not layouts and nearest is not None:
        names = nearest[0]
        parts = [f"unexpected keys {few_keys(sorted(present - names))}" if present - names else "",
                 f"missing keys {few_keys(sorted(names - present))}" if names - present else ""]
        raise UserError(f"{source}: keys match no ResNet the spec can express ({fmt} names, "
                        f"{'-'.join(map(str, depths))} blocks): " + "; ".join(p for p in parts if p))
    if len(matches) > 1 and len({m.replace(downsample="conv") for m in matches}) == 1:
        matches = [m for m in matches if (m.downsample == "avg") == (m.stem == "deep")]
    found = [n for spec in matches for n in named(spec)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"{source}: keys and shapes match no known architecture; pass --arch NAME")
    raise UserError(f"{source}: matches several architectures ({', '.join(s.name for s in found)}); "
                    "pass --arch NAME")
