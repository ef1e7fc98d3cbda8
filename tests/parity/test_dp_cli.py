"""`parity --data-parallel 2`: every framework's own data-parallel engine against the float64 oracle of
its batch-norm semantics, the engines' running-statistics rules as measured, and a crashing replica."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.replicas import FAULT_ENV, ReplicaCase
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.parity import dataparallel, engine

TINY = get_spec("resnet18_small").replace(depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_width=8)
CLI = [sys.executable, "-m", "resnet_rosetta.cli.main", "parity", "--size", "16", "--grad-size", "16", "--batch", "4",
       "--checks", "dp", "--data-parallel", "2", "--dp-steps", "2"]
# what each variant's engine does, as the dp rows and the data_parallel section must show it
EXPECTED = {"torch": ("local", ["rank0_broadcast"], False), "paddle": ("local", ["local"], False),
            "flax": ("sync", ["global"], True), "flax/shard_map": ("local", ["replica_mean"], True)}


def _run(tmp_path: Path, frameworks: str) -> tuple[subprocess.CompletedProcess, dict]:
    save_canonical(tmp_path / "w.safetensors", random_weights(TINY, seed=2), TINY)
    proc = subprocess.run(CLI + ["--weights", str(tmp_path / "w.safetensors"), "--frameworks", frameworks,
                                 "--json", str(tmp_path / "p.json"), "--markdown", str(tmp_path / "p.md")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, json.loads((tmp_path / "p.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("frameworks", ["torch,paddle", "flax"])
def test_every_engine_matches_the_oracle_of_its_own_semantics(frameworks: str, tmp_path: Path) -> None:
    proc, doc = _run(tmp_path, frameworks)
    variants = [v for v in EXPECTED if v.split("/")[0] in frameworks.split(",")]
    rows = {(c["left"], c["right"]): c for c in doc["checks"] if c["check"] == "dp"}
    assert doc["passed"] and {left for left, right in rows if right == "oracle"} == set(variants)
    assert all(c["status"] == "pass" for c in rows.values()), rows
    section = doc["data_parallel"]["archs"][TINY.name]
    for v in variants:
        bn, measured, identical = EXPECTED[v]
        info = section[v]
        assert (info["batch_norm"], info["running_stats_measured"], info["replicas_keep_identical_running_stats"],
                info["replicas"]) == (bn, measured, identical, 2), info
        assert info["engine"] and info["backend"] and info["launcher"]
        quantities = [r["quantity"] for r in rows[(v, "oracle")]["rows"]]
        assert quantities[0] == "step1.loss" and quantities[1].startswith("step1.params (worst: ")
        assert sum(q.startswith("rank") for q in quantities) == 2
    if frameworks == "torch,paddle":  # same semantics but for rank 1's running statistics (broadcast vs local)
        pair = [r["quantity"] for r in rows[("torch", "paddle")]["rows"]]
        assert any(q.startswith("rank0.") for q in pair) and not any(q.startswith("rank1.") for q in pair)
        assert "SyncBatchNorm expected input tensor to be on GPU" in doc["unsupported"]["torch dp sync batch norm"]
        assert "sync_batch_norm" in doc["unsupported"]["paddle dp sync batch norm"]
    else:  # global and per-replica batch norm are never compared with each other
        assert ("flax", "flax/shard_map") not in rows
    assert "## Data parallel (2 replicas, 2 SGD steps)" in (tmp_path / "p.md").read_text()
    assert "data parallel: 2 replicas" in proc.stdout


@pytest.mark.slow
def test_a_crashing_replica_ends_the_run_named_with_no_process_left(tmp_path: Path, monkeypatch) -> None:
    pc = engine.ParityCase.seeded(TINY, 16, 4, seed=1, hyper=engine.Hyper(steps=1))
    case = ReplicaCase(TINY, pc.weights, pc.batches, 2, 0.01, 0.9, 1e-4)
    monkeypatch.setenv(FAULT_ENV, "crash:1")
    found = dataparallel.run_dp(case, ("torch",), tmp_path, timeout=120)
    assert not found.comparisons and list(found.errors) == ["torch dp"]
    assert "rank 1 failed: RuntimeError: injected crash" in found.errors["torch dp"], found.errors
    pids = [int(p.read_text()) for p in (tmp_path / "torch").glob("rank*.pid")]
    assert len(pids) == 2
    deadline = time.monotonic() + 10  # a killed process may take a moment to be gone
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, pids)), pids


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
