"""The guide's topic "float64: proving a port": its facts (how each framework keeps batch norm's
epsilon in a float64 model, and what Paddle's float32 epsilon does to fp64 parity), and its table, the
broken-port catalogue (common/catalogue.py), every row shown in the terminal and in
docs/differences.md, and every row a claim the catalogue's tests assert: flipped to a false verdict
(for a bug fp32 used to miss, the old "pass"; a user's port's name for the place one stage late),
that test fails."""
from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import sys
import warnings

import jax
import numpy as np
import paddle
import pytest
import torch
from flax import linen as nn

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.catalogue import CATALOGUE, CONTROLS
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.tolerance import FP64_BOUND
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.guide.topics import get_topic
from resnet_rosetta.parity import engine

from guide_helpers import ROOT

TOPIC = get_topic("float64")
# The claims these tests hold the frameworks to (test_flipped_claims.py flips each and expects a failure).
CLAIMS = {
    "epsilon_in_float64": {"torch": 1e-5, "paddle": float(np.float32(1e-5)), "flax": 1e-5},  # given 1e-5
    "unrounded_epsilon_verdict": {"torch": "pass", "paddle": "FAIL", "flax": "pass"},  # fp64 eval + train
}
V = 1e-6  # the running variance the epsilon is read back through: eps is a tenth of what y depends on
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


@functools.lru_cache(maxsize=None)
def _epsilon_used(framework: str) -> float:
    """The epsilon the framework's own float64 eval-mode batch norm computes with when given 1e-5, read
    back from its output: y = x / sqrt(V + eps) (running mean 0, running variance V, unit scale)."""
    x = np.linspace(0.5, 2.0, 8).reshape(1, 2, 2, 2)  # NCHW, float64
    if framework == "torch":
        bn = torch.nn.BatchNorm2d(2, eps=1e-5).double().eval()
        bn.running_var.fill_(V)
        y = bn(torch.from_numpy(x)).detach().numpy()
    elif framework == "paddle":
        bn = paddle.nn.BatchNorm2D(2, epsilon=1e-5)
        bn.to(dtype="float64")
        bn._variance.set_value(np.full(2, V))
        bn.eval()
        y = bn(paddle.to_tensor(x)).numpy()
    else:
        with jax.enable_x64(True):
            layer = nn.BatchNorm(use_running_average=True, epsilon=1e-5, dtype=np.float64, param_dtype=np.float64)
            variables = {"params": {"scale": np.ones(2), "bias": np.zeros(2)},
                         "batch_stats": {"mean": np.zeros(2), "var": np.full(2, V)}}
            y = np.asarray(layer.apply(variables, x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    assert y.dtype == np.float64
    return float(np.median((x / y) ** 2 - V))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bn_epsilon_in_a_float64_model(framework: str) -> None:
    """1e-5 and its float32 value differ by 2.5e-14; read back to ~1e-20 here."""
    assert abs(_epsilon_used(framework) - CLAIMS["epsilon_in_float64"][framework]) < 1e-18


@functools.lru_cache(maxsize=None)
def _unrounded_epsilon_errors(framework: str) -> dict[str, float]:
    """Worst relative error against the float64 oracle (eval, train) of the framework's fp64 port of
    resnet18's structure (1/4 widths, one block per stage, 32 px, batch 2) given the spec's 1e-5 as is,
    the oracle computing with 1e-5 too (what fp64 runs do instead: `strict_spec`'s float32 value)."""
    spec = get_spec("resnet18").replace(widths=(16, 32, 64, 128), stem_width=16, num_classes=10, depths=(1, 1, 1, 1))
    case = engine.ParityCase.seeded(spec, size=32, batch=2, seed=1, dtype="fp64")
    case = dataclasses.replace(case, spec=case.spec.replace(bn_eps=1e-5))
    checks = ("eval", "train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = {engine.ORACLE: engine.oracle_outputs(case, checks),
                   framework: engine.framework_outputs(framework, case, checks)}
    return {c.check: max(r.max_rel for r in c.rows) for c in engine.compare_participants("r", results, "fp64", matches={})}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_unrounded_epsilon_in_fp64_parity(framework: str) -> None:
    errors = _unrounded_epsilon_errors(framework)
    assert ("pass" if max(errors.values()) < FP64_BOUND else "FAIL") == CLAIMS["unrounded_epsilon_verdict"][framework], \
        errors


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
