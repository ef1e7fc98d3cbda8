"""`parity --data-parallel 2`: every framework's own data-parallel engine against the float64 oracle of
its batch-norm semantics, the engines' running-statistics rules as measured, and a replica that crashes, hangs
or is killed (the run ends named, no process left)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.replicas import FAULT_ENV, HOST, ReplicaCase
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
def test_every_engine_matches_the_oracle_of_its_own_semantics(tmp_path: Path) -> None:
    """torch's and Paddle's through the CLI (JAX's: tests/parity/test_dp_multinode.py and the guide's
    tests/guide/test_data_parallel.py, which runs all three engines)."""
    frameworks = "torch,paddle"
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
    # the same semantics but for rank 1's running statistics (broadcast vs local)
    pair = [r["quantity"] for r in rows[("torch", "paddle")]["rows"]]
    assert any(q.startswith("rank0.") for q in pair) and not any(q.startswith("rank1.") for q in pair)
    assert "SyncBatchNorm expected input tensor to be on GPU" in doc["unsupported"]["torch dp sync batch norm"]
    assert "sync_batch_norm" in doc["unsupported"]["paddle dp sync batch norm"]
    assert "## Data parallel (2 replicas, 2 SGD steps)" in (tmp_path / "p.md").read_text()
    assert "data parallel: 2 replicas" in proc.stdout


def test_a_port_in_use_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run([*CLI, "--frameworks", "torch", "--dp-port", str(port), "--json",
                               str(tmp_path / "p.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"resnet-rosetta parity: error: --dp-port {port}: port " \
        f"{port} on {HOST} is in use (replicas take ports {port}..{port + 1})", proc.stderr
    assert not list(tmp_path.iterdir())


def _faulty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> ReplicaCase:
    """A one-step torch dp case whose replicas run with `fault` and a mark in their environment."""
    monkeypatch.setenv(FAULT_ENV, fault)
    monkeypatch.setenv("RESNET_ROSETTA_TEST_MARK", str(tmp_path))
    pc = engine.ParityCase.seeded(TINY, 16, 4, seed=1, hyper=engine.Hyper(steps=1))
    return ReplicaCase(TINY, pc.weights, pc.batches, 2, 0.01, 0.9, 1e-4)


@pytest.mark.slow
def test_a_crashing_replica_ends_the_run_named_with_no_process_left(tmp_path: Path, monkeypatch) -> None:
    found = dataparallel.run_dp(_faulty(tmp_path, monkeypatch, "crash:1"), ("torch",), tmp_path, timeout=120)
    assert not found.comparisons and list(found.errors) == ["torch dp"]
    assert "rank 1 failed: RuntimeError: injected crash" in found.errors["torch dp"], found.errors
    assert len(list((tmp_path / "torch").glob("rank*.pid"))) == 2
    _assert_none_left(tmp_path)


@pytest.mark.slow
def test_a_hanging_replica_is_stopped_at_the_time_limit_named_with_no_process_left(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    started = time.monotonic()
    found = dataparallel.run_dp(_faulty(tmp_path, monkeypatch, "hang:1"), ("torch",), tmp_path, timeout=30)
    error = found.errors["torch dp"]
    assert "rank 1 never reached step 1" in error and "time limit 30 s" in error, error
    assert time.monotonic() - started < 30 + 15
    _assert_none_left(tmp_path)


@pytest.mark.slow
def test_a_killed_replica_ends_the_run_at_once_named_with_no_process_left(tmp_path: Path, monkeypatch) -> None:
    """SIGKILL of rank 1 while rank 0 waits for it in step 1's collective: the run ends within
    seconds, not at its 120 s limit, and names rank 1."""
    case, folder, found = _faulty(tmp_path, monkeypatch, "hang:1"), tmp_path / "torch", []
    job = threading.Thread(target=lambda: found.append(dataparallel.run_dp(case, ("torch",), tmp_path, timeout=120)))
    job.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((folder / "rank1.pid").exists()
                                               and _read(folder / "rank0.progress") == "1"):
        time.sleep(0.1)
    killed = time.monotonic()
    os.kill(int((folder / "rank1.pid").read_text()), signal.SIGKILL)
    job.join(timeout=60)
    assert not job.is_alive() and time.monotonic() - killed < 20
    error = found[0].errors["torch dp"]  # named by the launcher, or else by the watcher
    assert "rank 1 never reached step 1" in error or "rank 1 (pid" in error, error
    assert "process 1 terminated with signal SIGKILL" in error or "killed by a signal" in error, error
    _assert_none_left(tmp_path)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _assert_none_left(tmp_path: Path) -> None:
    """No process carrying this test's mark (the job, its launcher, every replica) is still running."""
    mark = f"RESNET_ROSETTA_TEST_MARK={tmp_path}".encode()
    deadline = time.monotonic() + 10  # a killed process may take a moment to be gone
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left


def _marked(mark: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0") and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
