"""The guide agrees with what it describes: code cells are the real source, every fact names a test
that exists, and every measured topic has its figures."""
from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from typing import Any

import pytest

from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.guide.figures import load_figures
from resnet_rosetta.guide.measure import tables
from resnet_rosetta.guide.pitfalls import PITFALLS
from resnet_rosetta.guide.source import PACKAGE, Code, SourceDrift
from resnet_rosetta.guide.topics import TOPICS

from guide_helpers import FIGURES, ROOT

BLOCK_ARCHS = ("resnet50", "resnet18")


def all_cells() -> list[tuple[str, str, Code]]:
    """(topic, framework, code cell) for every topic, each block type resolved."""
    cells = []
    for topic in TOPICS:
        archs = BLOCK_ARCHS if topic.per_block else BLOCK_ARCHS[:1]
        for arch in archs:
            for fw in FRAMEWORKS:
                cells += [(topic.name, fw, code) for code in topic.cells(fw, get_spec(arch))]
    return list(dict.fromkeys(cells))


def _real_object(code: Code) -> Any:
    obj: Any = importlib.import_module(f"{PACKAGE}.{code.module}")
    for part in code.qualname.split("."):
        obj = getattr(obj, part)
    return inspect.unwrap(obj) if callable(obj) else obj


@pytest.mark.parametrize("topic,framework,code", all_cells(), ids=lambda v: v if isinstance(v, str) else v.qualname)
def test_code_cells_are_the_real_source(topic: str, framework: str, code: Code) -> None:
    """Each excerpt is the running class or function's own source (inspect), or a verbatim part of it."""
    excerpt = code.source()
    obj = _real_object(code)
    if getattr(obj, "__qualname__", None) != code.qualname:  # a module-level value: its assignment
        assert excerpt in inspect.getsource(importlib.import_module(f"{PACKAGE}.{code.module}"))
        return
    real = textwrap.dedent(inspect.getsource(obj)).rstrip()
    if code.contains is None:
        assert excerpt == real
    else:
        assert code.contains in excerpt
        real_lines = [line.strip() for line in real.splitlines()]
        assert all(line.strip() in real_lines for line in excerpt.splitlines() if line != "...")


def test_source_drift_is_detected() -> None:
    with pytest.raises(SourceDrift, match="no ResNet.gone"):
        Code("frameworks.torch.model", "ResNet.gone").source()
    with pytest.raises(SourceDrift, match="no statement containing"):
        Code("frameworks.torch.model", "ResNet.__init__", "paddle.nn").source()


def test_every_fact_names_a_test_that_exists() -> None:
    pitfall_ids = {f"{p.framework}-{p.name}" for p in PITFALLS}
    for topic in TOPICS:
        for row in topic.rows:
            path = ROOT / row.proof_file
            assert path.is_file(), f"{topic.name}: {row.label}: no test file {row.proof_file}"
            tree = ast.parse(path.read_text(encoding="utf-8"))
            tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
            name, _, param = row.proof_test.partition("[")
            assert name in tests, f"{topic.name}: {row.label}: no test {name}"
            assert not param or (name == "test_pitfall" and param.rstrip("]") in pitfall_ids), row.proof


def test_measured_topics_have_figures() -> None:
    figures = load_figures(FIGURES)
    assert figures is not None
    assert set(figures["tables"]) == {t.name for t in TOPICS if t.measured}
    assert {p.topic for p in PITFALLS} <= {t.name for t in TOPICS if t.measured}


def test_measured_tables_cover_the_measured_topics() -> None:
    """`explain --measure` turns per-framework results into one table per measured topic."""
    result = {"pitfalls": [], "compile": [{"model": "m", "batch": 1, "first_call_s": 2.0, "steady_call_s": 1.0,
                                           "eager_call_s": 1.5}], "bf16_error": 0.01}
    per_framework = {fw: {**result, "pitfalls": [{"name": p.name, "topic": p.topic, "mistake": p.mistake,
                                                   "naive": 1.0, "correct": 0.0, "threshold": p.threshold,
                                                   "tolerance": p.tolerance} for p in PITFALLS if p.framework == fw]}
                     for fw in FRAMEWORKS}
    measured = tables(per_framework)
    assert set(measured) == {t.name for t in TOPICS if t.measured}
    assert len(measured["pitfalls"]["rows"]) == len(PITFALLS)
    assert all(len(row) == len(table["columns"]) for table in measured.values() for row in table["rows"])
