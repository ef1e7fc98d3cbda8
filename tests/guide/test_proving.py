"""The guide's topic "float64: proving a port": its table is the broken-port catalogue
(common/catalogue.py), every row shown in the terminal and in docs/differences.md, and every row a
claim the catalogue's tests assert: flipped to a false verdict (for a bug fp32 used to miss, the old
"pass"; a user's port's name for the place one stage late), that test fails."""
from __future__ import annotations

import dataclasses
import importlib
import re
import sys

import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.catalogue import CATALOGUE, CONTROLS
from resnet_rosetta.guide.topics import get_topic

from guide_helpers import ROOT

TOPIC = get_topic("float64")
# (bug, verdict, false value): the fp64 first divergence one stage late, fp32 said to miss a bug it catches,
# the user's port's name for it one stage late
FLIPS = [("torch_downsample_offset", "fp64", "eval/layer3"), ("torch_downsample_offset", "fp32", "pass"),
         ("paddle_no_weight_decay", "fp32", "pass"), ("paddle_downsample_avg_pool", "yours", "output of layer3.0")]


def _catalogue_test() -> object:
    """tests/parity/test_catalogue.py as pytest imports it (one module: its cached clean runs are shared)."""
    sys.path.insert(0, str(ROOT / "tests" / "parity"))
    try:
        return importlib.import_module("test_catalogue")
    finally:
        sys.path.remove(str(ROOT / "tests" / "parity"))


def test_the_topic_table_is_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    header, *rows = TOPIC.table
    assert header[0] == "bug" and len(rows) == len(CATALOGUE) + len(CONTROLS)
    assert [tuple(r) for r in rows[:len(CATALOGUE)]] == [
        (e.what, e.framework, f"FAIL at {e.fp64}", e.fp32, e.through_model) for e in CATALOGUE]
    assert (ROOT / TOPIC.table_proof).is_file()
    assert main(["explain", "float64", "--width", "400"]) == 0
    out = capsys.readouterr().out
    guide = (ROOT / "docs" / "differences.md").read_text(encoding="utf-8")
    for row in rows:
        assert any(all(cell in line for cell in row) for line in out.splitlines()), row
        assert "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in guide, row


@pytest.mark.slow
@pytest.mark.parametrize("bug,verdict,false", FLIPS, ids=[f"{b}-{v}" for b, v, _ in FLIPS])
def test_a_flipped_row_fails_the_catalogue_test(bug: str, verdict: str, false: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    entry = next(e for e in CATALOGUE if e.bug == bug)
    flipped = dataclasses.replace(entry, **{verdict: false})
    assert flipped != entry
    test = _catalogue_test()
    with pytest.raises(AssertionError, match=re.escape(repr(false if verdict == "fp32" else flipped.through_model
                                                            if verdict == "yours" else f"FAIL at {false}"))):
        if verdict == "yours":
            test.test_the_same_bug_in_a_users_model_fails_through_model_where_it_is(flipped, monkeypatch)
        else:
            test.test_a_catalogued_bug_fails_in_fp64_where_it_is(flipped, monkeypatch)
