"""Pitfalls at a glance (`resnet-rosetta explain pitfalls`): every fact of guide/topics.py's 'pitfalls' topic, proved on
the frameworks as installed."""
from __future__ import annotations

import json

import pytest

from resnet_rosetta.common.tolerance import tolerance
from resnet_rosetta.guide.pitfalls import PITFALLS, Bench, Pitfall

from guide_helpers import FIGURES


# The claim each pitfall makes (test_flipped_claims.py flips it and expects a failure): its naive port is
# wrong beyond the pitfall's threshold, its correct port within tolerance.
CLAIMS = {"naive_port_is_wrong": {f"{p.framework}-{p.name}": True for p in PITFALLS}}


@pytest.mark.parametrize("pitfall", PITFALLS, ids=lambda p: f"{p.framework}-{p.name}")
def test_pitfall(pitfall: Pitfall, bench: Bench) -> None:
    naive, correct = pitfall.errors(bench)
    wrong = CLAIMS["naive_port_is_wrong"][f"{pitfall.framework}-{pitfall.name}"]
    assert (naive > pitfall.threshold) == wrong, f"naive port error {naive:.2e}, threshold {pitfall.threshold:.0e}"
    assert correct < pitfall.tolerance


def test_committed_figures_agree_with_the_claims() -> None:
    """docs/differences.json, which the guide quotes, agrees with the bounds the tests assert. The facts
    themselves are measured fresh by test_pitfall, test_first_call_compiles and test_bf16_paths: this only
    keeps the committed figures from contradicting them."""
    tables = json.loads(FIGURES.read_text())["tables"]
    rows = tables["pitfalls"]["rows"]
    assert sorted((r[1], r[0]) for r in rows) == sorted((p.framework, p.mistake) for p in PITFALLS)
    for mistake, _, naive, threshold, correct, tol in rows:
        assert naive > threshold and correct < tol, mistake
    for framework, _, _, first, steady, _ in tables["compilation"]["rows"]:
        assert first > steady, framework
    bf16 = dict(tables["mixed-precision"]["rows"])
    assert 1e-3 < bf16["torch"] < 5e-2 and 1e-3 < bf16["flax"] < 5e-2 and bf16["paddle"] < tolerance("eval")
