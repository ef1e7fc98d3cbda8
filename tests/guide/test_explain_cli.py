"""`resnet-rosetta explain` as a user runs it: every topic renders at any width, bad arguments are user
errors, and `--markdown` writes exactly the committed docs/differences.md."""
from __future__ import annotations

from pathlib import Path

import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.guide.figures import load_figures
from resnet_rosetta.guide.markdown import render_markdown
from resnet_rosetta.guide.topics import TOPICS, get_topic

from guide_helpers import FIGURES, ROOT

GUIDE = ROOT / "docs" / "differences.md"


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


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


