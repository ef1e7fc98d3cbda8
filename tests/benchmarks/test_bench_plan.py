"""What `report` plans from its options: the level presets (cells in bound order, budget, what they
skip) and a custom sweep when a sweep option is given. No framework is imported, nothing runs."""
from __future__ import annotations

import argparse

from resnet_rosetta.benchmarks.config import DEFAULT_EXEC
from resnet_rosetta.benchmarks.plan import report_plan
from resnet_rosetta.benchmarks.presets import REPORT_ROUNDS, build_plan
from resnet_rosetta.cli.main import build_parser


def _report_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["report", "--frameworks", "torch", "--threads", "1", *argv])


def test_presets_cover_the_bounds_and_say_what_they_skip():
    fws = ["torch", "paddle", "flax"]
    default = build_plan("default", fws, threads=2)
    labels = {c.label for c in default.cells}
    for arch in ("resnet18", "resnet50"):
        for fw, ex in (("torch", "eager"), ("paddle", "eager"), ("flax", "compiled")):
            for mode, batch in (("infer", 16), ("train", 4)):
                assert f"{arch} {fw}/ours+reference {mode} b{batch} fp32 {ex} 224px" in labels
    assert {c.framework for c in default.cells if c.arch == "resnet50" and c.batch == 16 and c.mode == "infer"
            and c.execution == "compiled"} == set(fws)
    assert {c.framework for c in default.cells if c.precision == "bf16"} == set(fws)
    assert default.cells[0].impl == "ours" and default.cells[0].precision == "fp32"  # bound cells first
    assert default.budget_s <= 15 * 60 and default.skips and default.measures
    assert {c.pair_rounds for c in default.cells if c.with_reference} == {REPORT_ROUNDS}
    assert {(c.repeats, c.pair_rounds, c.warmup) for c in build_plan("default", fws, threads=2, repeats=7, rounds=3,
                                                                      warmup=0).cells} == {(7, 4, 0)}
    quick = build_plan("quick", fws, threads=2)
    assert {c.arch for c in quick.cells} == {"resnet18"} and quick.budget_s < default.budget_s
    assert len(build_plan("full", fws, threads=2).cells) > len(default.cells)


def test_report_runs_its_level_preset_unless_a_sweep_option_is_given():
    plan, frameworks, threads, _ = report_plan(_report_args(), "quick")
    assert (plan.level, frameworks, threads) == ("quick", ["torch"], 1)
    assert plan.cells == build_plan("quick", ["torch"], threads=1).cells  # report's timer defaults
    assert plan.budget_s == 5 * 60 and [p.framework for p in plan.probes] == ["torch"]
    assert report_plan(_report_args("--no-peak"), "default")[0].probes == []
    custom, _, _, _ = report_plan(_report_args("--mode", "infer"), "quick")
    assert custom.level == "custom" and custom.budget_s is None and custom.parity_args == []
    # the options not given take bench's defaults: resnet18 and resnet50, batch 16, fp32, the usual mode
    assert {(c.arch, c.mode, c.batch, c.precision, c.execution) for c in custom.cells} == {
        ("resnet18", "infer", 16, "fp32", "eager"), ("resnet50", "infer", 16, "fp32", "eager")}
    assert {c.pair_rounds for c in custom.cells} == {REPORT_ROUNDS} and all(c.warmup == 1 for c in custom.cells)


def test_full_report_has_one_resnet50d_parity_and_bench_row():
    """`report --full` checks resnet50d's parity and times one resnet50d row (fp32 inference, each
    framework's usual mode, no reference); the quick and default reports stay as they were."""
    fws = ["torch", "paddle", "flax"]
    for device, batch in (("cpu", 16), ("gpu", 128)):
        full = build_plan("full", fws, threads=2, device=device)
        assert "resnet50d" in full.parity_args[full.parity_args.index("--arch") + 1].split(",")
        rows = {(c.framework, c.mode, c.batch, c.precision, c.execution, c.with_reference)
                for c in full.cells if c.arch == "resnet50d"}
        assert rows == {(fw, "infer", batch, "fp32", DEFAULT_EXEC[fw], False) for fw in fws}
    for level in ("quick", "default"):
        plan = build_plan(level, fws, threads=2)
        assert "resnet50d" not in " ".join(plan.parity_args) and all(c.arch != "resnet50d" for c in plan.cells)
