"""common/spec.py without a framework: every field's bounds at the edge, the messages naming field and
value, the JSON reader's refusals, the block plan's channels and strides, and the registry (fast)."""
from __future__ import annotations

import json

import pytest

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import PRESETS, ResNetSpec, SpecRegistry, block_plan, get_spec, stages, stem_convs


def _spec(**changes: object) -> ResNetSpec:
    return ResNetSpec(**{"name": "s", "block": "bottleneck", "depths": (1, 1), "widths": (8, 16), **changes})


@pytest.mark.parametrize("field, cap", [("groups", 4096), ("width_per_group", 1 << 16), ("num_classes", 10**7),
                                        ("in_channels", 4096), ("stem_width", 1 << 16), ("input_size", 1 << 16)])
def test_integer_fields_accept_one_to_cap(field: str, cap: int) -> None:
    for good in (1, cap):
        assert getattr(_spec(widths=(64, 64), **{field: good}), field) == good
    for bad in (0, cap + 1, True, 2.0, "3"):
        with pytest.raises(UserError, match=f"^spec s: field {field}: expected an integer in \\[1, {cap}\\], "
                                            f"found {bad!r}$".replace("(", r"\(").replace(")", r"\)")):
            _spec(**{field: bad})


@pytest.mark.parametrize("field, cap", [("depths", 1000), ("widths", 1 << 16)])
def test_stage_lists(field: str, cap: int) -> None:
    assert getattr(_spec(**{field: (1, cap)}), field) == (1, cap)
    for bad in ((), (1, 0), (cap + 1, 1), (1, True), [1, 1], (1.0, 1)):
        with pytest.raises(UserError, match=f"^spec s: field {field}: expected a non-empty list of integers in "
                                            f"\\[1, {cap}\\], found "):
            _spec(**{field: bad})
    with pytest.raises(UserError, match=r"^spec s: depths \(1, 1, 1\) and widths \(8, 16\) differ in length$"):
        _spec(depths=(1, 1, 1))


@pytest.mark.parametrize("field, good, bad, interval", [
    ("bn_eps", (1e-300, 0.999, 1), (0.0, 1.0, -1e-5, float("nan"), float("inf"), True, "1e-5"), r"\(0, 1\)"),
    ("bn_momentum", (1e-9, 1.0, 1, 0.5), (0.0, 1.0000001, -0.1, float("nan"), False, True), r"\(0, 1\]"),
])
def test_batch_norm_numbers(field: str, good: tuple, bad: tuple, interval: str) -> None:
    for value in good:
        if not (field == "bn_eps" and value == 1):
            assert getattr(_spec(**{field: value}), field) == value
    for value in bad + ((1,) if field == "bn_eps" else ()):
        with pytest.raises(UserError, match=f"^spec s: field {field}: expected a finite number in {interval}, found"):
            _spec(**{field: value})


def test_choices_names_and_flags() -> None:
    for field, bad, allowed in [("block", "dense", "basic or bottleneck"), ("stem", "huge", "imagenet or small or deep"),
                                ("downsample", "pool", "conv or avg"),
                                ("bn_running_var", "sometimes", "unbiased or biased or native")]:
        with pytest.raises(UserError, match=f"^spec s: field {field}: expected {allowed}, found '{bad}'$"):
            _spec(**{field: bad})
    for name in ("", 5):
        with pytest.raises(UserError, match=f"^spec: field name: expected a non-empty string, found {name!r}$"):
            _spec(name=name)
    with pytest.raises(UserError, match=r"^spec s: field zero_init_residual: expected true or false, found 1$"):
        _spec(zero_init_residual=1)
    assert _spec(zero_init_residual=True).zero_init_residual is True
    for changes in ({"groups": 2}, {"width_per_group": 32}):
        with pytest.raises(UserError, match="^spec s: BasicBlock supports only groups=1 and width_per_group=64$"):
            _spec(block="basic", **changes)
    with pytest.raises(UserError, match=r"^spec s: field width_per_group: expected widths \* width_per_group / 64 >= 1"):
        _spec(widths=(8, 1), width_per_group=32)
    assert _spec(widths=(8, 2), width_per_group=32).widths == (8, 2)
    text = _spec().to_json().replace('"widths": [8, 16]', '"widths": [8, 1]').replace('"width_per_group": 64',
                                                                                     '"width_per_group": 32')
    with pytest.raises(UserError, match=r"field width_per_group: expected widths \* width_per_group / 64 >= 1"):
        ResNetSpec.from_json(text)  # "bottleneck" read from JSON: equal to the constant, not identical


def test_from_json_refusals_name_the_source() -> None:
    cases = [("{", r"^f\.json: spec is not valid JSON \("), ("[1]", r"^f\.json: spec: expected a JSON object, found list$"),
             ('{"name": "a", "block": "basic", "depths": [1], "zz": 1, "aa": 2}', r"^f\.json: spec: unknown fields aa, zz$"),
             ('{"name": "a", "widths": [1]}', r"^f\.json: spec: missing fields block, depths$"),
             ('{"name": "a", "block": "basic", "depths": 3}', r"^f\.json: spec field depths: expected a list of integers, found 3$"),
             ('{"name": "a", "block": "basic", "depths": [1], "widths": "wide"}', r"^f\.json: spec field widths: expected"),
             ('{"name": "a", "block": "basic", "depths": [1], "widths": [1], "groups": 0}', r"^f\.json: spec a: field groups")]
    for text, message in cases:
        with pytest.raises(UserError, match=message):
            ResNetSpec.from_json(text, "f.json")
    with pytest.raises(UserError, match=r"^spec is not valid JSON"):
        ResNetSpec.from_json(None)  # type: ignore[arg-type]
    spec = _spec(stem="small", bn_running_var="native")
    text = spec.to_json()
    assert list(json.loads(text)) == sorted(json.loads(text)) and ResNetSpec.from_json(text) == spec


def test_block_plan_channels_strides_and_shortcuts() -> None:
    plan = [(p.prefix, p.in_channels, p.mid_channels, p.out_channels, p.stride, p.downsample)
            for p in block_plan(_spec(depths=(2, 2), stem_width=32))]
    assert plan == [("layer1.0", 32, 8, 32, 1, False), ("layer1.1", 32, 8, 32, 1, False),
                    ("layer2.0", 32, 16, 64, 2, True), ("layer2.1", 64, 16, 64, 1, False)]
    assert [(p.stage, p.index) for p in block_plan(_spec())] == [(1, 0), (2, 0)]
    assert block_plan(_spec())[0].downsample  # 64 -> 32 channels: a shortcut conv without a stride
    assert [(p.stage, p.index) for p in block_plan(get_spec("resnet50")) if p.downsample] == [
        (1, 0), (2, 0), (3, 0), (4, 0)]
    wide_stem = ResNetSpec("w", "basic", (1,), widths=(300,), stem_width=300)  # 300 == 300, two int objects
    assert not block_plan(wide_stem)[0].downsample
    resnext, wide = block_plan(get_spec("resnext50_32x4d")), block_plan(get_spec("wide_resnet50_2"))
    assert [p.mid_channels for p in resnext if p.index == 0] == [128, 256, 512, 1024]
    assert [p.mid_channels for p in wide if p.index == 0] == [128, 256, 512, 1024]
    assert [p.mid_channels for p in block_plan(get_spec("resnet34")) if p.index == 0] == [64, 128, 256, 512]
    assert [(n, [p.index for p in ps]) for n, ps in stages(_spec(depths=(2, 1)))] == [(1, [0, 1]), (2, [0])]
    assert _spec(depths=(1, 1, 1), widths=(8, 16, 32)).feature_dim == 128 and len(set(block_plan(_spec()))) == 2
    assert _spec().feature_dim == 64 and _spec(block="basic").feature_dim == 16 and _spec().expansion == 4
    def geometry(spec: ResNetSpec) -> list[tuple[int, int, int]]:
        return [(c.kernel, c.stride, c.padding) for c in stem_convs(spec)]
    assert geometry(_spec()) == [(7, 2, 3)] and geometry(_spec(stem="small")) == [(3, 1, 1)]
    assert geometry(ResNetSpec.from_json(_spec().to_json())) == [(7, 2, 3)]  # JSON strings are not interned
    assert geometry(_spec(stem="deep")) == [(3, 2, 1), (3, 1, 1), (3, 1, 1)]


def test_registry() -> None:
    registry = SpecRegistry()
    first = registry.register(_spec(name="a"))
    registry.register(_spec(name="b"))
    assert registry.get("a") is first and registry.names() == ["a", "b"] and [s.name for s in registry] == ["a", "b"]
    assert "a" in registry and "c" not in registry
    with pytest.raises(UserError, match=r"^unknown architecture 'c'; known: a, b$"):
        registry.get("c")
    assert PRESETS.names() == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet18d", "resnet34d",
                               "resnet50d", "resnet101d", "resnet152d", "resnext50_32x4d", "wide_resnet50_2",
                               "resnet18_small", "resnet50_small"]
    default = ResNetSpec("d", "basic", (1, 1, 1, 1))
    fields = ("block", "depths", "widths", "groups", "width_per_group", "stem", "num_classes", "input_size",
              "downsample")
    assert [tuple(getattr(get_spec(n), f) for f in fields) for n in PRESETS.names()] == [
        ("basic", (2, 2, 2, 2), default.widths, 1, 64, "imagenet", 1000, 224, "conv"),
        ("basic", (3, 4, 6, 3), default.widths, 1, 64, "imagenet", 1000, 224, "conv"),
        ("bottleneck", (3, 4, 6, 3), default.widths, 1, 64, "imagenet", 1000, 224, "conv"),
        ("bottleneck", (3, 4, 23, 3), default.widths, 1, 64, "imagenet", 1000, 224, "conv"),
        ("bottleneck", (3, 8, 36, 3), default.widths, 1, 64, "imagenet", 1000, 224, "conv"),
        ("basic", (2, 2, 2, 2), default.widths, 1, 64, "deep", 1000, 224, "avg"),
        ("basic", (3, 4, 6, 3), default.widths, 1, 64, "deep", 1000, 224, "avg"),
        ("bottleneck", (3, 4, 6, 3), default.widths, 1, 64, "deep", 1000, 224, "avg"),
        ("bottleneck", (3, 4, 23, 3), default.widths, 1, 64, "deep", 1000, 224, "avg"),
        ("bottleneck", (3, 8, 36, 3), default.widths, 1, 64, "deep", 1000, 224, "avg"),
        ("bottleneck", (3, 4, 6, 3), default.widths, 32, 4, "imagenet", 1000, 224, "conv"),
        ("bottleneck", (3, 4, 6, 3), default.widths, 1, 128, "imagenet", 1000, 224, "conv"),
        ("basic", (2, 2, 2, 2), default.widths, 1, 64, "small", 10, 32, "conv"),
        ("bottleneck", (3, 4, 6, 3), default.widths, 1, 64, "small", 10, 32, "conv")]
    assert default.widths == (64, 128, 256, 512) and (default.in_channels, default.stem_width) == (3, 64)
    assert (default.bn_eps, default.bn_momentum, default.bn_running_var) == (1e-5, 0.1, "unbiased")
    assert all(get_spec(n).replace(name="d", depths=(1, 1, 1, 1)) == default for n in ("resnet18", "resnet34"))
    assert get_spec("resnet18").replace(num_classes=7).num_classes == 7
