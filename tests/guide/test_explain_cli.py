"""`resnet-rosetta explain` and docs/differences.md: every topic renders, code cells are the real source,
every fact names a test that exists, and the committed guide is exactly what the source generates."""
from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

from resnet_rosetta.guide.figures import load_figures
from resnet_rosetta.guide.markdown import render_markdown
from resnet_rosetta.guide.measure import tables
from resnet_rosetta.guide.pitfalls import PITFALLS
from resnet_rosetta.guide.source import PACKAGE, Code, SourceDrift
from resnet_rosetta.guide.topics import TOPICS, get_topic
from resnet_rosetta.cli.main import main
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks import FRAMEWORKS

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "differences.md"
FIGURES = ROOT / "docs" / "differences.json"
BLOCK_ARCHS = ("resnet50", "resnet18")


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def all_cells() -> list[tuple[str, str, Code]]:
    """(topic, framework, code cell) for every topic, each block type resolved."""
    cells = []
    for topic in TOPICS:
        archs = BLOCK_ARCHS if topic.per_block else BLOCK_ARCHS[:1]
        for arch in archs:
            for fw in FRAMEWORKS:
                cells += [(topic.name, fw, code) for code in topic.cells(fw, get_spec(arch))]
    return list(dict.fromkeys(cells))


@pytest.mark.parametrize("width", [300, 120, 50])
@pytest.mark.parametrize("name", [t.name for t in TOPICS])
def test_every_topic_renders(name: str, width: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(capsys, name, "--width", str(width))
    topic = get_topic(name)
    assert code == 0 and topic.title in out
    for row in topic.rows:
        assert row.label.split()[0] in out
    for fw in FRAMEWORKS:
        for cell in topic.cells(fw, get_spec("resnet50")):
            assert cell.source().splitlines()[0].strip()[:30] in out


def test_block_code_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = explain(capsys, "block", "--arch", "resnet50", "--width", "400")
    assert any(line.count("class ") == 3 and "class BottleneckBlock" not in line
               and line.count("class Bottleneck(nn.Module):") == 2 and "class ConvBNLayer(nn.Layer):" in line
               for line in out.splitlines())
    assert any("`Bottleneck`" in line and "`BottleneckBlock`" in line for line in out.splitlines())
    _, out, _ = explain(capsys, "block", "--arch", "resnet18", "--width", "400")
    assert "class BasicBlock(nn.Module):" in out and "class BasicBlock(nn.Layer):" in out
    assert "class Bottleneck" not in out and "BottleneckBlock" not in out


def test_narrow_terminal_stacks_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = explain(capsys, "padding", "--width", "60")
    assert "━━ PyTorch" in out and "━━ Flax linen" in out
    assert max(len(line) for line in out.splitlines() if "│" in line) <= 60


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


def test_topic_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(capsys)
    assert code == 0 and all(t.name in out for t in TOPICS)


def test_unknown_topic_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = explain(capsys, "nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown topic 'nope'" in err and all(t.name in err for t in TOPICS)
    with pytest.raises(UserError):
        get_topic("nope")


@pytest.mark.parametrize("args", [["padding", "--arch", "resnet18"], ["block", "--arch", "resnet7"],
                                  ["padding", "--markdown", "x.md"]])
def test_bad_arguments_are_user_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, *args)
    assert code == 2 and err.startswith("resnet-rosetta explain: error:")


def test_markdown_needs_measured_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, "--markdown", str(tmp_path / "g.md"), "--figures", str(tmp_path / "none.json"))
    assert code == 2 and "explain --measure" in err and not (tmp_path / "g.md").exists()


def test_guide_is_generated_from_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/differences.md is exactly what the topics, the source files and the figures produce today."""
    figures = load_figures(FIGURES)
    assert figures is not None, f"{FIGURES} is missing: run `resnet-rosetta explain --measure {FIGURES}`"
    assert GUIDE.read_text(encoding="utf-8") == render_markdown(figures), (
        "docs/differences.md is stale: run `resnet-rosetta explain --markdown docs/differences.md`")
    code, _, _ = explain(capsys, "--markdown", str(tmp_path / "g.md"), "--figures", str(FIGURES))
    assert code == 0 and (tmp_path / "g.md").read_text(encoding="utf-8") == GUIDE.read_text(encoding="utf-8")


def test_every_fact_names_a_test_that_exists() -> None:
    tree = ast.parse((ROOT / "tests" / "test_differences.py").read_text(encoding="utf-8"))
    tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    pitfall_ids = {f"{p.framework}-{p.name}" for p in PITFALLS}
    for topic in TOPICS:
        for row in topic.rows:
            name, _, param = row.proof.partition("[")
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
