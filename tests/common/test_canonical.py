"""common/canonical.py on tiny specs: the module list written out by hand, the strict check's messages,
the safetensors reader on hand-made headers (bf16, unknown dtypes, damaged files), and the seeded
weights' distributions (fast, NumPy only)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.common import canonical as c
from resnet_rosetta.common.errors import UserError, take_notes
from resnet_rosetta.common.spec import ResNetSpec

BASIC = ResNetSpec("tiny_basic", "basic", (1, 2), widths=(2, 4), stem_width=2, num_classes=3, in_channels=1)
BNECK = ResNetSpec("tiny_bneck", "bottleneck", (1,), widths=(4,), stem_width=4, num_classes=5, stem="small",
                   groups=2, width_per_group=32)  # mid = int(4 * 32 / 64) * 2 = 4, out = 16


def test_basic_modules_in_execution_order() -> None:
    assert c.canonical_modules(BASIC) == [
        ("conv1", "conv", (2, 1, 7, 7)), ("bn1", "bn", (2,)),
        ("layer1.0.conv1", "conv", (2, 2, 3, 3)), ("layer1.0.bn1", "bn", (2,)),
        ("layer1.0.conv2", "conv", (2, 2, 3, 3)), ("layer1.0.bn2", "bn", (2,)),
        ("layer2.0.conv1", "conv", (4, 2, 3, 3)), ("layer2.0.bn1", "bn", (4,)),
        ("layer2.0.conv2", "conv", (4, 4, 3, 3)), ("layer2.0.bn2", "bn", (4,)),
        ("layer2.0.downsample.0", "conv", (4, 2, 1, 1)), ("layer2.0.downsample.1", "bn", (4,)),
        ("layer2.1.conv1", "conv", (4, 4, 3, 3)), ("layer2.1.bn1", "bn", (4,)),
        ("layer2.1.conv2", "conv", (4, 4, 3, 3)), ("layer2.1.bn2", "bn", (4,)),
        ("fc", "fc", (3, 4))]
    loaded = ResNetSpec.from_json(BASIC.to_json())  # its strings are not interned: compared by value
    assert c.canonical_modules(loaded) == c.canonical_modules(BASIC) and c.relu_sites(loaded) == c.relu_sites(BASIC)
    assert c.relu_sites(BASIC) == ["bn1", "layer1.0.bn1", "layer1.0", "layer2.0.bn1", "layer2.0",
                                   "layer2.1.bn1", "layer2.1"]


def test_bottleneck_modules_and_grouped_conv() -> None:
    assert c.canonical_modules(BNECK) == [
        ("conv1", "conv", (4, 1 * 3, 3, 3)), ("bn1", "bn", (4,)),
        ("layer1.0.conv1", "conv", (4, 4, 1, 1)), ("layer1.0.bn1", "bn", (4,)),
        ("layer1.0.conv2", "conv", (4, 2, 3, 3)), ("layer1.0.bn2", "bn", (4,)),
        ("layer1.0.conv3", "conv", (16, 4, 1, 1)), ("layer1.0.bn3", "bn", (16,)),
        ("layer1.0.downsample.0", "conv", (16, 4, 1, 1)), ("layer1.0.downsample.1", "bn", (16,)),
        ("fc", "fc", (5, 16))]
    assert c.relu_sites(BNECK) == ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.0"]


def test_shapes_expand_bn_and_fc_leaves() -> None:
    shapes = c.canonical_shapes(BNECK)
    assert list(shapes)[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                "layer1.0.conv1.weight"]
    assert shapes["fc.weight"] == (5, 16) and shapes["fc.bias"] == (5,) and list(shapes)[-2:] == ["fc.weight", "fc.bias"]
    assert len(shapes) == 5 * 1 + 4 * 5 + 2
    assert [c.is_buffer(k) for k in ("bn1.running_mean", "bn1.running_var", "bn1.weight", "fc.bias")] == [
        True, True, False, False]


def test_check_weights_names_each_problem() -> None:
    good = c.random_weights(BASIC)
    c.check_weights(good, BASIC, "f")
    bad = {k: v for k, v in good.items() if not k.startswith("layer2.1")} | {"extra.weight": np.zeros(1)}
    bad["bn1.bias"] = np.zeros(3, np.float32)
    bad["fc.bias"] = np.zeros(4, np.float32)
    with pytest.raises(UserError, match=r"^f: does not match tiny_basic: missing keys layer2\.1\.conv1\.weight, "
                                        r"layer2\.1\.bn1\.weight, layer2\.1\.bn1\.bias, layer2\.1\.bn1\.running_mean "
                                        r"and 6 more; unexpected keys extra\.weight; key bn1\.bias: expected shape "
                                        r"\(2,\), found \(3,\)$"):
        c.check_weights(bad, BASIC, "f")
    with pytest.raises(UserError, match=r"^f: does not match tiny_basic: key bn1\.bias: expected shape \(2,\), found \(1,\)$"):
        c.check_weights({**good, "bn1.bias": np.zeros(1, np.float32)}, BASIC, "f")
    for key, value, message in [("fc.bias", np.zeros(3, np.int32), r"unsupported dtype int32 \(expected one of "
                                 r"float16, float32, float64\)"),
                                ("bn1.weight", np.array([1.0, np.nan], np.float16), "contains non-finite values"),
                                ("fc.bias", np.array([0.0, np.inf, 0.0]), "contains non-finite values")]:
        with pytest.raises(UserError, match=f"^f: key {key}: {message}"):
            c.check_weights({**good, key: value}, BASIC, "f")


def test_as_float32_and_few_keys() -> None:
    out = c.as_float32({"a": np.ones(2, np.float64), "b": np.ones(1, np.float16)})
    assert [v.dtype for v in out.values()] == [np.float32, np.float32]
    keys = ["a", "b", "c", "d", "e", "f"]
    assert c.few_keys(keys[:4]) == "a, b, c, d"
    assert c.few_keys(keys) == "a, b, c, d and 2 more"
    assert c.few_keys(keys, limit=5) == "a, b, c, d, e and 1 more"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    weights = c.random_weights(BNECK, seed=3, dtype=np.float64)
    c.save_canonical(tmp_path / "w.safetensors", weights, BNECK)
    back, spec = c.load_canonical(tmp_path / "w.safetensors")
    assert spec == BNECK and set(back) == set(c.canonical_shapes(BNECK))
    assert all(np.array_equal(back[k], weights[k]) and back[k].dtype == np.float64 for k in weights)
    with pytest.raises(UserError, match="does not match tiny_basic"):
        c.save_canonical(tmp_path / "x.safetensors", weights, BASIC)
    assert not (tmp_path / "x.safetensors").exists()


def _raw_file(path: Path, header: dict, data: bytes) -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def test_header_version_and_spec(tmp_path: Path) -> None:
    data = np.arange(2, dtype="<f4").tobytes()
    entry = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    plain = _raw_file(tmp_path / "p.safetensors", entry, data)
    weights, spec = c.load_canonical(plain)
    assert spec is None and weights["a"].tolist() == [0.0, 1.0]
    same = _raw_file(tmp_path / "v1.safetensors", {**entry, "__metadata__": {"format_version": "1"}}, data)
    assert c.load_canonical(same)[1] is None
    for version in ("2", "0"):
        other = _raw_file(tmp_path / "v.safetensors", {**entry, "__metadata__": {"format_version": version}}, data)
        with pytest.raises(UserError, match=f"v\\.safetensors: canonical format version {version} is not supported "
                                            r"\(expected 1\)$"):
            c.load_canonical(other)
    with pytest.raises(UserError, match=r"nope\.safetensors: no such file$"):
        c.load_canonical(tmp_path / "nope.safetensors")


def test_bf16_is_widened_exactly(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.140625, 0.0, 65280.0, -0.0078125], np.float32).reshape(2, 3)
    raw = (values.view("<u4") >> 16).astype("<u2").tobytes()
    f32 = np.array([7.0], "<f4").tobytes()
    header = {"z": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
              "b": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [4, 16]},
              "y": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]}}  # data after b: b's bounds matter
    take_notes()
    out, _ = c.read_safetensors(_raw_file(tmp_path / "b.safetensors", header, f32 + raw + f32))
    assert out["b"].dtype == np.float32 and np.array_equal(out["b"], values) and out["z"].tolist() == [7.0]
    assert take_notes() == [f"{tmp_path / 'b.safetensors'}: 1 bfloat16 tensors widened to float32 "
                            "(exact; NumPy has no bfloat16)"]


@pytest.mark.parametrize("header, data, message", [
    ({"__metadata__": {"k": "v"}, "A": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0",
     r"key A: dtype F8_E4M3 cannot be read \(NumPy has no such type"),  # checked after the metadata, upper case
    ({"a": {"dtype": "F32", "shape": [2, 0], "data_offsets": [0, 0]}}, b"",
     r"key a: zero-sized tensor of shape \(2, 0\)$"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, r"not a readable safetensors file \("),
    (["a"], b"", r"not a readable safetensors file \(header is not a JSON object\)$"),
])
def test_damaged_files_are_refused_by_name(tmp_path: Path, header: object, data: bytes, message: str) -> None:
    path = _raw_file(tmp_path / "d.safetensors", header, data)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=f"^{tmp_path / 'd.safetensors'}: {message}"):
        c.read_safetensors(path)


def test_header_length_beyond_the_file_or_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", 31) + b"{}" + b" " * 20)
    with pytest.raises(UserError, match=r"h\.safetensors: not a readable weights \(header length 31 exceeds the file\)$"):
        c.read_safetensors(path, "weights")
    path.write_bytes(struct.pack("<Q", 22) + b"{}" + b" " * 20)
    assert c.read_safetensors(path) == ({}, {})
    with open(path, "wb") as f:  # sparse: a header claimed 1 byte over the 100 MB cap, inside the file
        f.write(struct.pack("<Q", 100_000_001))
        f.truncate(100_000_100)
    with pytest.raises(UserError, match="header length 100000001 exceeds the file"):
        c.read_safetensors(path)


def test_random_weights_are_seeded_and_never_identity() -> None:
    spec = BASIC.replace(widths=(2, 64), num_classes=50)
    w = c.random_weights(spec, seed=5)
    assert all(v.dtype == np.float32 for v in w.values())
    again, other = c.random_weights(spec, seed=5), c.random_weights(spec, seed=6)
    assert all(np.array_equal(a, b) for a, b in zip(c.random_weights(spec).values(), c.random_weights(spec, 0).values()))
    assert all(np.array_equal(w[k], again[k]) for k in w) and not np.array_equal(w["fc.weight"], other["fc.weight"])
    for key in ("layer2.1.bn1.running_var", "layer2.1.bn1.weight"):
        assert 0.5 <= w[key].min() and w[key].max() <= 1.5 and w[key].std() > 0.2
    for key in ("layer2.1.bn1.running_mean", "layer2.1.bn1.bias"):
        assert abs(w[key].mean()) < 0.05 and 0.06 < w[key].std() < 0.14
    bound = 1 / 8.0  # 1 / sqrt(feature_dim = 64)
    for key in ("fc.weight", "fc.bias"):
        assert -bound <= w[key].min() < -0.8 * bound and 0.8 * bound < w[key].max() <= bound
    conv = w["layer2.1.conv1.weight"]  # fan_in 64 * 9: He-normal std sqrt(2 / 576)
    assert abs(conv.std() / np.sqrt(2 / 576) - 1) < 0.05 and abs(conv.mean()) < 0.01
    assert c.random_weights(BASIC, dtype=np.float16)["conv1.weight"].dtype == np.float16
