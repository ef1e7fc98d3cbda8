"""A cell stopped while its reference pair runs keeps our model's figures: the cell saves them
before the pair starts, and the sweep turns the pending pair into the reason it stopped. No
framework: a fake runner in-process, tests/fake_cells.py in place of the cell process."""
from __future__ import annotations

import json
import os
import time
import types
from pathlib import Path

import pytest

from resnet_rosetta.benchmarks import cell as cell_process
from resnet_rosetta.benchmarks import pipeline, sweep
from resnet_rosetta.benchmarks.config import Cell
from resnet_rosetta.common.workload import Workload, WorkloadConfig

CELL = Cell(framework="torch", arch="resnet18", mode="infer", batch=2, size=32, warmup=0, iters=1, repeats=2,
            threads=1, with_reference=True)


def _fake_runner(reference_fails: bool) -> types.SimpleNamespace:
    def build(config: WorkloadConfig) -> Workload:
        if config.impl == "reference" and reference_fails:
            raise RuntimeError("reference model broke")
        return Workload(step=lambda: None, sync=lambda handles: None,
                        peak_memory=lambda: {"peak_memory_bytes": 1, "memory_kind": "fake"})
    return types.SimpleNamespace(setup_threads=lambda n: None, info=lambda device: {"framework_version": "0"},
                                 build=build)


@pytest.mark.parametrize("reference_fails", [False, True])
def test_cell_saves_our_figures_before_the_pair_starts(monkeypatch, reference_fails):
    monkeypatch.setattr(cell_process, "pin_threads", lambda threads: [])
    monkeypatch.setattr(cell_process, "_runner", lambda fw: _fake_runner(reference_fails))
    saved: list[str] = []
    record = cell_process.run_cell(CELL, lambda r: saved.append(json.dumps(r)))
    assert len(saved) == 1
    early = json.loads(saved[0])
    assert early["status"] == "ok" and early["metrics"]["img_s_median"] > 0
    assert early["metrics"]["pair"]["status"] == cell_process.PENDING
    assert record["status"] == "ok"
    assert record["metrics"]["pair"]["status"] == ("error" if reference_fails else "ok")
    assert record["metrics"]["img_s_median"] == early["metrics"]["img_s_median"]


def _fake_cell_process(monkeypatch: pytest.MonkeyPatch, function: str) -> None:
    """Every cell process runs `tests/fake_cells.py:function` instead of a real measurement."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(sweep, "CELL_TARGET", f"fake_cells:{function}")


@pytest.mark.parametrize("function, status, why", [
    ("pending_then_hang", "timeout", "no result after"),
    ("pending_then_exit_3", "error", "exit code 3"),
    ("pending_then_sigkill", "oom", "SIGKILL"),
])
def test_sweep_keeps_our_figures_when_the_pair_is_cut(monkeypatch, tmp_path, function, status, why):
    _fake_cell_process(monkeypatch, function)
    record = sweep.run_cell(CELL, sweep.SweepOptions(out_dir=tmp_path, timeout_s=3.0, progress=False), 0)
    assert record["status"] == "ok" and record["metrics"]["img_s_median"] == 12.5
    pair = record["metrics"]["pair"]
    assert pair["status"] == status
    assert pair["message"].startswith("stopped while the reference pair ran") and why in pair["message"]


def test_a_cell_without_a_result_is_still_a_failure(monkeypatch, tmp_path):
    _fake_cell_process(monkeypatch, "exit_4")
    record = sweep.run_cell(CELL, sweep.SweepOptions(out_dir=tmp_path, timeout_s=30.0, progress=False), 0)
    assert record["status"] == "error" and "exit code 4" in record["message"]
    assert record["metrics"] == {}


def test_the_time_budget_cutting_a_pair_is_no_failure(monkeypatch, tmp_path):
    """`report --budget-min` stopping a cell is the user's limit: our figures stand, the pair is
    skipped, and the exit code does not call it a failure."""
    _fake_cell_process(monkeypatch, "pending_then_hang")
    opts = sweep.SweepOptions(out_dir=tmp_path, timeout_s=600.0, progress=False,
                              hard_deadline=time.monotonic() + 3.0)
    record = sweep.run_cell(CELL, opts, 0)
    assert record["status"] == "ok" and record["metrics"]["img_s_median"] == 12.5
    pair = record["metrics"]["pair"]
    assert pair["status"] == "skipped" and "the time budget ran out" in pair["message"]
    assert pipeline.exit_code([record], interrupted=False) == 0


def test_tf32_off_reaches_each_cell_for_cublas_and_for_the_runners(monkeypatch, tmp_path):
    """`--tf32 off`: the override cuBLAS / cuDNN obey, and the variable on which every runner
    switches its own framework's TF32 settings off (common/workload.py apply_tf32_policy)."""
    _fake_cell_process(monkeypatch, "tf32_environment")
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    monkeypatch.delenv("RESNET_ROSETTA_TF32", raising=False)
    record = sweep.run_cell(CELL, sweep.SweepOptions(out_dir=tmp_path, timeout_s=30.0, progress=False, tf32="off"), 0)
    assert record["env"] == {"NVIDIA_TF32_OVERRIDE": "0", "RESNET_ROSETTA_TF32": "off"}
