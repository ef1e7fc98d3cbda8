"""A cell stopped while its reference pair runs keeps our model's figures: the cell saves them
before the pair starts, and the sweep turns the pending pair into the reason it stopped. No
framework: a fake runner in-process, a plain Python child in place of the cell process."""
from __future__ import annotations

import json
import sys
import types

import pytest

from resnet_rosetta.benchmarks import cell as cell_process
from resnet_rosetta.benchmarks import sweep
from resnet_rosetta.benchmarks.config import Cell
from resnet_rosetta.benchmarks.workload import Workload

CELL = Cell(framework="torch", arch="resnet18", mode="infer", batch=2, size=32, warmup=0, iters=1, repeats=2,
            threads=1, with_reference=True)


def _fake_runner(reference_fails: bool) -> types.SimpleNamespace:
    def build(cell: Cell) -> Workload:
        if cell.impl == "reference" and reference_fails:
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


# The child writes what a cell leaves behind when stopped during its pair, then does `then`.
CHILD = """
import json, os, signal, sys, time
res = sys.argv[-1]
pair = {{"status": "pending", "message": "the reference pair was being measured"}}
rec = {{"status": "ok", "message": "", "metrics": {{"img_s_median": 12.5, "pair": pair}},
       "settings": {{}}, "env": {{}}}}
with open(res + ".tmp", "w") as f:
    json.dump(rec, f)
os.replace(res + ".tmp", res)
{then}
"""


@pytest.mark.parametrize("then, status, why", [
    ("time.sleep(60)", "timeout", "no result after"),
    ("sys.exit(3)", "error", "exit code 3"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "oom", "SIGKILL"),
])
def test_sweep_keeps_our_figures_when_the_pair_is_cut(monkeypatch, tmp_path, then, status, why):
    real_popen = sweep.subprocess.Popen

    def child(cmd, **kw):
        return real_popen([sys.executable, "-c", CHILD.format(then=then), *cmd[-2:]], **kw)

    monkeypatch.setattr(sweep.subprocess, "Popen", child)
    record = sweep.run_cell(CELL, sweep.SweepOptions(out_dir=tmp_path, timeout_s=3.0, progress=False), 0)
    assert record["status"] == "ok" and record["metrics"]["img_s_median"] == 12.5
    pair = record["metrics"]["pair"]
    assert pair["status"] == status
    assert pair["message"].startswith("stopped while the reference pair ran") and why in pair["message"]


def test_a_cell_without_a_result_is_still_a_failure(monkeypatch, tmp_path):
    real_popen = sweep.subprocess.Popen
    monkeypatch.setattr(sweep.subprocess, "Popen",
                        lambda cmd, **kw: real_popen([sys.executable, "-c", "import sys; sys.exit(4)"], **kw))
    record = sweep.run_cell(CELL, sweep.SweepOptions(out_dir=tmp_path, timeout_s=30.0, progress=False), 0)
    assert record["status"] == "error" and "exit code 4" in record["message"]
    assert record["metrics"] == {}
