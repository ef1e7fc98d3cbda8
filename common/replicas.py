"""What every data-parallel replica shares, whatever its engine: the job's case file, its shard of the
global batch, the files a replica writes (progress, outputs, its error), a free port on 127.0.0.1
and the fault hook the tests use to make one replica crash or hang.

A dp job folder holds `case.safetensors` (weights w/KEY, global batches bx/K, by/K; spec, SGD
settings and replica count in the header) and, per variant, `VARIANT/rank{r}.safetensors` with
`loss/K`, `gates/K/SITE` (this replica's shard), `params/K/NAME`, `momentum/K/NAME` (rank 0) and
`buffers/NAME` (the running statistics this replica keeps after the last step), plus
`VARIANT/rank{r}.progress` (last finished step) and `VARIANT/rank{r}.error` (one line) files.
"""
from __future__ import annotations

import json
import os
import errno
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np

from .canonical import Weights, is_buffer
from .errors import UserError
from .spec import ResNetSpec

HOST = "127.0.0.1"  # rendezvous address: replicas never listen beyond this machine
FAULT_ENV = "RESNET_ROSETTA_DP_FAULT"  # "crash:RANK" or "hang:RANK": that replica fails at its first step


@dataclass(frozen=True)
class ReplicaCase:
    """A dp job: K global batches split over `replicas`, trained with SGD(lr, momentum, weight decay)."""

    spec: ResNetSpec
    weights: Weights
    batches: tuple[tuple[np.ndarray, np.ndarray], ...]
    replicas: int
    lr: float
    momentum: float
    weight_decay: float

    def shard(self, a: np.ndarray, rank: int) -> np.ndarray:
        """Replica `rank`'s contiguous slice of a global batch (the batch divides evenly)."""
        per = len(a) // self.replicas
        return a[rank * per:(rank + 1) * per]

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        tensors = {f"w/{k}": np.ascontiguousarray(v) for k, v in self.weights.items()}
        for k, (bx, by) in enumerate(self.batches):
            tensors.update({f"bx/{k}": np.ascontiguousarray(bx), f"by/{k}": np.ascontiguousarray(by)})
        meta = {"spec": self.spec.to_json(), "steps": str(len(self.batches)), "replicas": str(self.replicas),
                "sgd": json.dumps([self.lr, self.momentum, self.weight_decay])}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Path) -> "ReplicaCase":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in f.keys()}
        lr, momentum, wd = json.loads(meta["sgd"])
        batches = tuple((t[f"bx/{k}"], t[f"by/{k}"]) for k in range(int(meta["steps"])))
        return cls(ResNetSpec.from_json(meta["spec"]), {k[2:]: v for k, v in t.items() if k.startswith("w/")},
                   batches, int(meta["replicas"]), lr, momentum, wd)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def expect_world(variable: str, replicas: int, launcher: str) -> None:
    """In a process a launcher started (`parity --dp-node`): the world size it set in `variable`
    must be the run's replica count (one line, UserError)."""
    found = os.environ.get(variable)
    if found is None:
        raise UserError(f"--dp-node: {variable} is not set; start this command with {launcher}")
    if found != str(replicas):
        raise UserError(f"--dp-node: {launcher} set {variable}={found}, but --data-parallel is {replicas}")


def expect_rank_files(folder: Path, replicas: int) -> None:
    """On rank 0 of a multi-node run, after the engine's barrier: every replica's file is there
    (it is not when the run folder is not one every node sees)."""
    missing = [r for r in range(replicas) if not (folder / f"rank{r}.safetensors").exists()]
    if missing:
        raise UserError(f"--dp-node: {folder / f'rank{missing[0]}.safetensors'} is missing after every replica "
                        "finished: --run-dir must be a folder every node sees (a shared file system)")


def check_port(port: int, count: int, option: str) -> None:
    """The user's port (and the `count` - 1 after it, for launchers that take one per replica) free
    on 127.0.0.1 now, else a one-line UserError naming it."""
    for p in range(port, port + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, p))
            except OSError as exc:
                why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise UserError(f"{option} {port}: port {p} on {HOST} is {why}"
                                + (f" (replicas take ports {port}..{port + count - 1})" if count > 1 else "")) from None


class Watch:
    """A `common/process.py` watcher for a job whose replicas write into `folder`: once a replica
    process is gone without its results (killed, or crashed past its launcher) and the launcher has
    not ended the job `grace_s` later with its own account, the `verdict` naming it ends the job,
    instead of the peers waiting in a collective until the time limit. The replicas first seen
    gone are named (a launcher stops the others once it notices, so later ones are its doing)."""

    def __init__(self, folder: Path, grace_s: float = 3.0) -> None:
        self.folder, self.grace_s = folder, grace_s
        self.verdict: str | None = None
        self._first: tuple[float, list[str]] | None = None  # when replicas were first seen gone, and which

    def __call__(self, _job_pid: int) -> str | None:
        if self._first is None:
            gone = [pid_file.stem[4:] for pid_file in sorted(self.folder.glob("rank*.pid")) if self._gone(pid_file)]
            self._first = (time.monotonic(), gone) if gone else None
        elif time.monotonic() - self._first[0] >= self.grace_s:
            self.verdict = "; ".join(self._describe(rank) for rank in self._first[1])
        return self.verdict

    def _gone(self, pid_file: Path) -> bool:
        text = pid_file.read_text()
        return text.isdigit() and not (self.folder / f"{pid_file.stem}.safetensors").exists() and not _alive(int(text))

    def _describe(self, rank: str) -> str:
        error, progress = self.folder / f"rank{rank}.error", self.folder / f"rank{rank}.progress"
        if error.exists():
            return f"rank {rank} failed: {error.read_text()}"
        step = progress.read_text() if progress.exists() else "0"
        return (f"rank {rank} (pid {(self.folder / f'rank{rank}.pid').read_text()}) ended at step {step} without "
                "its results or an error (killed by a signal?)")


def _alive(pid: int) -> bool:
    """Is `pid` a running process (not gone, not a zombie its parent has yet to reap)?"""
    if not Path("/proc/self").exists():  # no /proc: signal 0 tells whether it exists
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


def fault_point(rank: int, step: int) -> None:
    """The test hook: with FAULT_ENV set to crash:R or hang:R, replica R crashes or hangs at step 1."""
    kind, _, target = os.environ.get(FAULT_ENV, "").partition(":")
    if step != 1 or not target or int(target) != rank:
        return
    if kind == "crash":
        raise RuntimeError(f"injected crash ({FAULT_ENV}={kind}:{target})")
    if kind == "hang":
        while True:
            time.sleep(1.0)


def mark_progress(folder: Path, rank: int, step: int) -> None:
    """Replica `rank` has passed the fault hook of `step` and entered its collectives."""
    (folder / f"rank{rank}.progress").write_text(str(step))


@contextmanager
def replica(folder: Path, rank: int) -> Iterator[None]:
    """Around one replica's work: its progress starts at 0, and an exception leaves a one-line
    `rank{r}.error` before it propagates to the engine's launcher."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{rank}.pid").write_text(str(os.getpid()))
    mark_progress(folder, rank, 0)
    try:
        yield
    except BaseException as exc:
        (folder / f"rank{rank}.error").write_text(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        raise


def train_replica(trainer: Any, case: ReplicaCase, rank: int, folder: Path) -> None:
    """Replica `rank`'s K steps on its shards with a trainer (`frameworks/<fw>/training.py`'s, its
    model wrapped by the engine), written as `rank{r}.safetensors` (see the module docstring)."""
    out: dict[str, np.ndarray] = {}
    for k, (bx, by) in enumerate(case.batches, start=1):
        fault_point(rank, k)
        mark_progress(folder, rank, k)
        out[f"loss/{k}"] = np.array([trainer.step(case.shard(bx, rank), case.shard(by, rank))], np.float64)
        out.update({f"gates/{k}/{site}": g for site, g in trainer.gates.items()})
        if rank == 0:
            out.update(step_state(k, trainer.canonical_weights(), trainer.optimizer_state()))
    out.update(buffers_of(trainer.canonical_weights()))
    save_rank(folder, rank, out)


def step_state(k: int, weights: Mapping[str, np.ndarray], momentum: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rank 0's parameters and momentum buffers after step k, under `params/k/` and `momentum/k/`."""
    return {**{f"params/{k}/{n}": v for n, v in weights.items() if not is_buffer(n)},
            **{f"momentum/{k}/{n}": v for n, v in momentum.items()}}


def buffers_of(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"buffers/{n}": v for n, v in weights.items() if is_buffer(n)}


def save_rank(folder: Path, rank: int, outputs: Mapping[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in outputs.items()}, str(folder / f"rank{rank}.safetensors"))


def load_rank(folder: Path, rank: int) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(folder / f"rank{rank}.safetensors"), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def diagnose(folder: Path, replicas: int) -> str:
    """Which replica failed, from the files the replicas left: those behind the others (with their
    error, if they left one), else every replica's error."""
    def read(r: int, kind: str) -> str | None:
        path = folder / f"rank{r}.{kind}"
        return path.read_text() if path.exists() else None
    progress = {r: int(read(r, "progress") or -1) for r in range(replicas)}
    errors = {r: text for r in range(replicas) if (text := read(r, "error")) is not None}
    lead = max(progress.values())
    if lead < 0:
        return "no replica started"
    behind = [r for r, k in progress.items() if k < lead] or sorted(errors)
    if not behind:
        return f"every replica reached step {lead}"
    return "; ".join(f"rank {r} failed: {errors[r]}" if r in errors else
                     f"rank {r} never reached step {lead} (stuck at step {max(progress[r], 0)}; the others "
                     "waited for it)" for r in behind)


def save_sync_bn(folder: Path, reason: str) -> None:
    """Rank 0 records whether SyncBatchNorm ran on this device ('') or the engine's error."""
    (folder / "sync_batch_norm.txt").write_text(reason)


def sync_bn_record(folder: Path) -> dict[str, str]:
    reason = (folder / "sync_batch_norm.txt").read_text()
    return {"status": "unsupported", "reason": reason} if reason else {"status": "available"}
