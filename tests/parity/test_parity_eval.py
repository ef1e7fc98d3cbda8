"""Eval-mode parity: every framework vs the float64 oracle and every pair, on logits and every stage."""
from __future__ import annotations

import pytest

from resnet_rosetta.common.spec import PRESETS, get_spec
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.parity import engine

# (preset, input size): the two flagship models at 224, the variants at smaller sizes.
CASES = [("resnet18", 224), ("resnet50", 224), ("resnet18_small", 32), ("resnext50_32x4d", 64),
         ("wide_resnet50_2", 32)]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def comparisons(request: pytest.FixtureRequest) -> list[engine.Comparison]:
    name, size = request.param
    case = engine.ParityCase.seeded(get_spec(name), size=size, batch=2, seed=7)
    results = {engine.ORACLE: engine.oracle_outputs(case, ("eval",))}
    for fw in FRAMEWORKS:
        results[fw] = engine.framework_outputs(fw, case, ("eval",))
    return engine.compare_participants(name, results)


@pytest.mark.slow
def test_every_framework_matches_the_oracle_and_each_other(comparisons: list[engine.Comparison]) -> None:
    pairs = {(c.left, c.right) for c in comparisons}
    assert len(pairs) == 6  # 3 vs oracle + 3 pairs
    for c in comparisons:
        assert [r.quantity for r in c.rows] == ["stem", "layer1", "layer2", "layer3", "layer4", "pooled", "logits"]
        assert c.passed, f"{c.left} vs {c.right}: first divergence {c.first_divergence}"


def test_grayscale_small_input_runs_in_every_framework() -> None:
    spec = get_spec("resnet18_small").replace(in_channels=1, widths=(8, 16, 16, 32))
    case = engine.ParityCase.seeded(spec, size=28, batch=2)
    results = {engine.ORACLE: engine.oracle_outputs(case, ("eval",))}
    results.update({fw: engine.framework_outputs(fw, case, ("eval",)) for fw in FRAMEWORKS})
    assert all(c.passed for c in engine.compare_participants(spec.name, results))
    assert results["flax"]["eval/logits"].shape == (2, 10)


# A deeper ResNet-D differs from resnet18d / resnet50d only in its depths, which its plain twin covers.
STRUCTURES = [n for n in PRESETS.names() if n not in ("resnet34d", "resnet101d", "resnet152d")]


@pytest.mark.slow
@pytest.mark.parametrize("name", STRUCTURES)
def test_every_preset_structure_runs_in_every_framework(name: str) -> None:
    """Each preset's depths, block, groups and stem at narrow widths, so all nine fit in seconds."""
    spec = get_spec(name).replace(widths=(16, 32, 64, 128), stem_width=16, num_classes=5)
    case = engine.ParityCase.seeded(spec, size=32, batch=1)
    results = {engine.ORACLE: engine.oracle_outputs(case, ("eval",))}
    results.update({fw: engine.framework_outputs(fw, case, ("eval",)) for fw in FRAMEWORKS})
    failed = [c for c in engine.compare_participants(name, results) if not c.passed]
    assert not failed, [(c.left, c.right, c.first_divergence) for c in failed]
