"""`resnet-rosetta report` as a user runs it, on a tiny custom sweep (the presets take minutes)."""
from __future__ import annotations

import json
import subprocess
import sys

from resnet_rosetta.benchmarks.presets import REPORT_ROUNDS, build_plan


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet_rosetta.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_report_folder_embeds_list_parity_outcome_bench_and_plots(tmp_path):
    out = tmp_path / "report"
    # An impossible parity request makes parity fail fast: the report must record it, not crash.
    p = cli("report", "--out", str(out), "--frameworks", "paddle", "--arch", "resnet18", "--mode", "infer",
            "--batch", "2", "--size", "32", "--repeats", "2", "--iters", "1", "--warmup", "0", "--threads", "1",
            "--no-peak", "--no-progress", "--parity-args", "--batch 0")
    assert p.returncode == 1, p.stderr[-2000:]  # parity did not pass
    index = (out / "index.md").read_text()
    assert "**Parity:** error: exit code 2" in index
    assert "resnet18           basic" in index  # the `list` table, embedded
    assert "### resnet18 infer (32x32)" in index and "| resnet18 | paddle | paddle.vision.models |" in index
    assert "![plot_resnet18_32px_infer_fp32.png](plot_resnet18_32px_infer_fp32.png)" in index
    assert "## Environment" in index and "What this report measured" in index
    for name in ("results.jsonl", "results.csv", "summary.json", "bench.md", "list.txt", "logs/parity.log",
                 "plot_resnet18_32px_infer_fp32.png"):
        assert (out / name).exists(), name
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["status"], r["metrics"]["pair"]["status"]) for r in recs] == [("ok", "ok")]  # ours, and its pair
    again = cli("report", "--out", str(out), "--skip-parity")
    assert again.returncode == 2 and "--overwrite" in again.stderr  # never mixes old and new results


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
