"""`resnet-rosetta report` as a user runs it, on a tiny custom sweep (the presets take minutes)."""
from __future__ import annotations

import json
import subprocess
import sys


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
