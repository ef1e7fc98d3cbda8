"""float64 parity (`--dtype fp64`): every framework meets one 1e-10 bound against the oracle and each
other on every quantity, with no floors, no branch-following and free-running trajectories; JAX's
x64 switch stays scoped; a framework that cannot run fp64 leaves the proof incomplete (exit 3)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta import frameworks
from resnet_rosetta.cli.main import main
from resnet_rosetta.common.errors import Unsupported
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.tolerance import FP64_BOUND, TOLERANCE_KINDS, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.parity import engine
from resnet_rosetta.parity.run import INCOMPLETE, Settings, run_parity

QUARTER = {"widths": (16, 32, 64, 128), "stem_width": 16, "num_classes": 10}
# (preset, input size, batch, checks): every preset's structure at quarter widths (the bottleneck
# family one block per stage: its block types, groups and widths, at a quarter of the cost), each
# with a free-running trajectory of STEPS SGD steps, compared at every step (so at 5 and at 20).
# Batch norm's n in layer4 sets how far a trajectory amplifies rounding: 48 px, batch 2 keeps n = 8
# (resnet18 at 32 px, batch 4, n = 4: its momentum drifted to 6.7e-10 by step 4); the small-input
# preset keeps n = 8 at 16 px. At 48 px every preset stayed within 1e-11 of the oracle over 20 steps.
STEPS = 20
TRAJECTORY = ("eval", "train", "step", "steps")
CASES = [("resnet18", 48, 2, engine.CHECKS), ("resnet18_small", 16, 2, ("train", "steps")),
         ("resnet50", 48, 2, TRAJECTORY), ("resnext50_32x4d", 48, 2, TRAJECTORY), ("wide_resnet50_2", 48, 2, TRAJECTORY)]


def _results(case: engine.ParityCase, checks: tuple[str, ...]) -> tuple[dict, list[engine.Comparison]]:
    results = {engine.ORACLE: engine.oracle_outputs(case, checks)}
    results.update({fw: engine.framework_outputs(fw, case, checks) for fw in FRAMEWORKS})
    references, matches = engine.follow_gates(case, checks, results)
    assert references == {}  # fp64 follows no framework's branches and restarts no trajectory
    assert all((m.flips, m.conflicts) == (0, 0) for m in matches.values()), matches
    return results, engine.compare_participants(case.spec.name, results, case.dtype, matches=matches)


def test_the_fp64_bound_is_one_number_for_every_quantity_and_pair() -> None:
    assert {tolerance(k, "fp64", pairwise=p) for k in TOLERANCE_KINDS for p in (False, True)} == {FP64_BOUND}


@pytest.mark.slow
@pytest.mark.parametrize("arch,size,batch,checks", CASES, ids=[c[0] for c in CASES])
def test_every_framework_is_the_same_function_in_fp64(arch: str, size: int, batch: int, checks: tuple[str, ...]) -> None:
    spec = get_spec(arch).replace(**QUARTER)
    if spec.block == "bottleneck":
        spec = spec.replace(depths=(1, 1, 1, 1))
    case = engine.ParityCase.seeded(spec, size=size, batch=batch, seed=1, hyper=engine.Hyper(steps=STEPS),
                                    dtype="fp64")
    assert case.spec.bn_eps == float(np.float32(1e-5)) and case.hyper.momentum == float(np.float32(0.9))
    results, comparisons = _results(case, checks)
    assert all(v.dtype == np.float64 for k, v in results["torch"].items() if not k.startswith(engine.GATES))
    assert {c.check for c in comparisons} == set(checks) and len(comparisons) == 6 * len(checks)
    for c in comparisons:
        assert c.status == "pass", (c.check, c.left, c.right, c.first_divergence)
        assert all(r.tolerance == FP64_BOUND and r.floor is None for r in c.rows)
    quantities = {r.quantity.split(" ")[0] for c in comparisons for r in c.rows}
    if "step" in checks:  # parameters, running statistics and momentum buffers after one step
        assert {"layer1.0.bn1.running_var", "layer1.0.conv1.weight", "momentum:fc.weight"} <= quantities
    if "steps" in checks:  # the whole free-running trajectory, every step
        assert {f"step{k}.{g}" for k in (5, STEPS) for g in ("loss", "params", "momentum", "stats")} <= quantities


@pytest.mark.slow
def test_fp32_flax_is_unchanged_by_an_fp64_run_in_the_same_process() -> None:
    spec = get_spec("resnet18_small").replace(widths=(8, 16, 16, 32))
    fp32 = engine.ParityCase.seeded(spec, size=16, batch=2, hyper=engine.Hyper(steps=1))
    checks = ("eval", "train")
    before = engine.framework_outputs("flax", fp32, checks)
    during = engine.framework_outputs("flax", engine.ParityCase.seeded(spec, size=16, batch=2, dtype="fp64",
                                                                       hyper=engine.Hyper(steps=1)), checks)
    after = engine.framework_outputs("flax", fp32, checks)
    assert during["eval/logits"].dtype == np.float64 and after["eval/logits"].dtype == np.float32
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    import jax
    assert jax.numpy.zeros(1).dtype == np.float32  # the switch is off again outside the fp64 run


def test_a_framework_without_fp64_is_unsupported_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    adapter = frameworks.load("paddle")

    class NoFloat64(adapter.Adapter):  # type: ignore[name-defined,misc]
        def __init__(self, *args: object, dtype: str = "fp32", **kwargs: object) -> None:
            if dtype == "fp64":
                raise Unsupported("paddle: no float64 conv2d kernel on this device")
            super().__init__(*args, dtype=dtype, **kwargs)
    monkeypatch.setattr(adapter, "Adapter", NoFloat64)
    small = ["parity", "--arch", "resnet18_small", "--size", "16", "--batch", "2", "--checks", "eval",
             "--frameworks", "torch,paddle"]
    assert main(small + ["--dtype", "fp64"]) == INCOMPLETE
    out = capsys.readouterr().out
    assert "paddle: not run (unsupported in float64: the proof is incomplete): paddle: no float64 conv2d" in out
    assert "torch vs oracle" in out and "not proven: paddle (paddle: no float64 conv2d" in out
    assert "parity: PASS (incomplete: paddle could not run in fp64)" in out
    assert main(small + ["--dtype", "fp8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--dtype: invalid choice: 'fp8'" in err[0]


@pytest.mark.slow
def test_default_parity_shows_fp32_numerics_and_the_fp64_proof(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from resnet_rosetta.benchmarks.report_index import summary_lines

    doc = run_parity(Settings(archs=("resnet18_small",), size=16, batch=2, checks=("eval",), proof=True,
                              markdown=str(tmp_path / "p.md")))
    out = capsys.readouterr().out
    assert doc["settings"]["dtype"] == "fp32" and doc["float64"]["settings"]["dtype"] == "fp64"
    assert doc["passed"] and doc["float64"]["passed"] and doc["incomplete"] == []
    worst = max(r["max_rel"] for c in doc["float64"]["checks"] for r in c["rows"])
    assert 0 < worst < FP64_BOUND and f"ports proven identical in float64 (worst {worst:.1e}" in out
    assert out.index("resnet18_small · eval (max relative") < out.index("ports proven identical")
    assert "## float64 proof" in (tmp_path / "p.md").read_text()
    lines = summary_lines([], {"ratios": []}, {"status": "passed", "doc": doc})
    assert any(line.startswith("**Float64:** ports proven identical in float64") for line in lines)


@pytest.mark.slow
def test_cli_fp64_isolated_runs_every_check_within_the_bound(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, "-m", "resnet_rosetta.cli.main", "parity", "--arch", "resnet18_small",
                           "--size", "16", "--grad-size", "16", "--batch", "2", "--steps", "1", "--dtype", "fp64",
                           "--isolate", "--stagewise", "--json", str(out)], capture_output=True, text=True, timeout=600)
    doc = json.loads(out.read_text())
    assert proc.returncode == 0 and doc["passed"], proc.stdout + proc.stderr
    assert doc["settings"]["isolate"] and doc["settings"]["conditioning_floor"] is None
    assert doc["settings"]["exact_constants"]["bn"]["resnet18_small"]["bn_eps"] == float(np.float32(1e-5))
    assert {c["check"] for c in doc["checks"]} == {"eval", "stagewise", "train", "grad", "step", "steps"}
    assert all(r["tolerance"] == FP64_BOUND and r["max_rel"] < FP64_BOUND for c in doc["checks"] for r in c["rows"])
    assert "ports proven identical in float64" in proc.stdout
