"""common/formats.py: the output format from a path and --to, and native arrays -> canonical weights with
the spec from a header, --arch or the tensors, on tiny specs (fast: NumPy only)."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_rosetta.common import formats, inference, rules
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, SpecRegistry

TINY = ResNetSpec("tiny", "basic", (1, 1), widths=(2, 4), stem_width=2, num_classes=3, in_channels=1)


@pytest.mark.parametrize("path, to, fmt", [("a.safetensors", None, "canonical"), ("a.pt", None, "torch"),
                                           ("d/a.PTH", "torch", "torch"), ("a.pdparams", None, "paddle"),
                                           ("a.pdparams", "paddle-vision", "paddle-vision"),
                                           ("a.pdparams", "paddle", "paddle"), ("a.msgpack", "flax", "flax")])
def test_output_format_from_extension_and_to(path: str, to: str | None, fmt: str) -> None:
    assert formats.format_for_output(path, to) == fmt


def test_option_strings_compare_by_value() -> None:
    """--to and --arch arrive from argv as fresh strings: equal to the constants, never identical."""
    assert formats.format_for_output("a.msgpack", "".join(["fl", "ax"])) == "flax"


@pytest.mark.parametrize("path, to, message", [
    ("a.npz", None, r"^a\.npz: unknown extension '\.npz'; expected one of \.msgpack, \.pdparams, \.pt, \.pth, \.safetensors \(or --to hf for a Hugging Face folder\)$"),
    ("weights", None, r"^weights: unknown extension '\(none\)'"),
    ("a.pt", "onnx", r"^unknown format 'onnx'; known: canonical, torch, paddle, paddle-vision, flax, timm, hf, paddleclas$"),
    ("a.msgpack", "torch", r"^a\.msgpack: --to torch does not match the extension \.msgpack \(format flax\)$"),
    ("a.pt", "paddle-vision", r"^a\.pt: --to paddle-vision does not match the extension \.pt \(format torch\)$"),
    ("a.msgpack", "paddle", r"^a\.msgpack: --to paddle does not match the extension \.msgpack \(format flax\)$"),
    ("a.safetensors", "paddle-vision", r"^a\.safetensors: --to paddle-vision does not match .* \(format canonical\)$"),
])
def test_output_format_refusals(path: str, to: str | None, message: str) -> None:
    with pytest.raises(UserError, match=message):
        formats.format_for_output(path, to)


@pytest.fixture
def tiny_presets(monkeypatch: pytest.MonkeyPatch) -> SpecRegistry:
    registry = SpecRegistry()
    registry.register(TINY)
    registry.register(TINY.replace(name="tiny_small", stem="small"))
    monkeypatch.setattr(inference, "PRESETS", registry)
    monkeypatch.setattr(formats, "get_spec", registry.get)
    return registry


@pytest.mark.parametrize("fmt, read_as", [("torch", "torch"), ("paddle", "paddle"), ("paddle-vision", "paddle"),
                                          ("flax", "flax")])
def test_spec_from_the_tensors_or_from_arch(tiny_presets: SpecRegistry, fmt: str, read_as: str) -> None:
    data = TINY.replace(num_classes=6)
    weights = random_weights(data, seed=2)
    native = rules.to_native(weights, data, fmt)
    for arch in (None, "tiny"):
        got, spec, found = formats.from_native(native, read_as, "src", arch=arch)
        assert (spec, found) == (data, fmt) and all(np.array_equal(got[k], weights[k]) for k in weights)
    with pytest.raises(UserError, match=r"^src: key \S+: expected shape .* \(architecture tiny_small\)$"):
        formats.from_native(native, read_as, "src", arch="tiny_small")


def test_header_spec_and_refusals(tiny_presets: SpecRegistry) -> None:
    weights = random_weights(TINY)
    got, spec, fmt = formats.from_native(weights, "torch", "f", spec=TINY, arch="tiny")
    assert spec == TINY and fmt == "torch" and got.keys() == weights.keys()
    assert formats.from_native(weights, "torch", "f", spec=TINY, arch="".join(["ti", "ny"]))[1] == TINY
    for arch in ("tiny_small", "a"):
        with pytest.raises(UserError, match=f"^f: checkpoint is tiny, but --arch says {arch}$"):
            formats.from_native(weights, "torch", "f", spec=TINY, arch=arch)
    with pytest.raises(UserError, match=r"^f: key bn1\.bias: zero-sized tensor of shape \(0,\)$"):
        formats.from_native({**weights, "bn1.bias": np.zeros(0)}, "torch", "f", spec=TINY)
    with pytest.raises(UserError, match=r"^f: key fc\.bias: contains non-finite values"):
        formats.from_native({**weights, "fc.bias": np.full(3, np.nan, np.float32)}, "torch", "f", spec=TINY)
    stemless = {k: v for k, v in rules.to_native(weights, TINY, "flax").items() if k != "params/conv1/kernel"}
    with pytest.raises(UserError, match=r"^f: not a tiny checkpoint in flax format \(no stem conv or classifier found\)$"):
        formats.from_native(stemless, "flax", "f", arch="tiny")
    vision = rules.to_native(weights, TINY, "paddle-vision")
    assert formats.from_native(vision, "".join(["pad", "dle"]), "f", arch="tiny")[2] == "paddle-vision"
    with pytest.raises(UserError, match=r"^f: holds neither"):
        formats.from_native({"x": np.zeros(1)}, "paddle", "f")
