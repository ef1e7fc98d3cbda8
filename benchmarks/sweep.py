"""Run cells, each in a fresh subprocess, and never lose a result.

Every cell gets a new Python process (own thread pools, allocator, compile caches), the same
thread variables and the same cores. The parent watches it: past its time limit, or past the
memory limit (resident set of the cell's whole process group), it is killed and recorded as
`timeout` / `oom`; a crash is recorded as `error` with the last lines of its log. A cell stopped
while its reference pair ran keeps our model's figures; the pair gets the status instead. The
records are rewritten to `results.jsonl` (atomically) after every cell, so Ctrl-C or a power cut
keeps everything measured so far.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from resnet_rosetta.common import process
from resnet_rosetta.common.host import group_rss_bytes, memory_available_bytes, mkl_env, thread_env
from resnet_rosetta.common.workload import TF32_ENV
from .cell import PENDING
from .dp import cell_env
from .config import Cell

SCHEMA_VERSION = 1
CELL_TARGET = "resnet_rosetta.benchmarks.cell:measure_cell"  # what runs in each cell's fresh process


@dataclass
class SweepOptions:
    out_dir: Path
    timeout_s: float = 900.0
    mem_limit_bytes: int | None = None
    deadline: float | None = None  # time.monotonic() after which no new cell starts
    hard_deadline: float | None = None  # time.monotonic() at which a running cell is stopped
    progress: bool = True
    tf32: str = "default"  # "off": NVIDIA_TF32_OVERRIDE=0 and each runner's own switches off (common/workload.py)
    mkl_amd: str = "auto"  # "auto": MKL_DEBUG_CPU_TYPE=5 on AMD CPUs (see common/host.mkl_env)

    @property
    def mem_limit_text(self) -> str:
        """The per-cell memory limit as the results' meta states it."""
        return f"{self.mem_limit_bytes / 2**30:.1f} GiB" if self.mem_limit_bytes else "none"


def default_mem_limit() -> int | None:
    avail = memory_available_bytes()
    return int(avail * 0.9) if avail else None


def _log_tail(path: Path, n: int = 6) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-600:]


def _gib(n: float | None) -> str:
    return "?" if n is None else f"{n / 2**30:.2f} GiB"


def base_record(cell: Cell) -> dict:
    return {"schema": SCHEMA_VERSION, "cell": cell.to_dict(), "model": cell.model,
            "reference_model": cell.reference_model, "status": "not_run", "message": "", "metrics": {},
            "settings": {}, "env": {}}


def run_cell(cell: Cell, opts: SweepOptions, index: int) -> dict:
    """Measure one cell in a fresh process; always returns a record (KeyboardInterrupt propagates)."""
    record = base_record(cell)
    logs = opts.out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{index:03d}_{cell.slug}.log"
    record["log"] = str(log_path.relative_to(opts.out_dir))
    timeout, budget_cut = opts.timeout_s, False
    if opts.hard_deadline is not None and opts.hard_deadline - time.monotonic() < timeout:
        timeout, budget_cut = max(1.0, opts.hard_deadline - time.monotonic()), True
    env = {**os.environ, **thread_env(cell.threads), **mkl_env(opts.mkl_amd)}
    for k, v in cell_env(cell).items():  # a data-parallel cell's host devices (XLA_FLAGS)
        env[k] = f"{env.get(k, '')} {v}".strip()
    if opts.tf32 == "off":  # the override for cuBLAS / cuDNN, the variable for each framework's own switches
        env.update({"NVIDIA_TF32_OVERRIDE": "0", TF32_ENV: "off"})
    record["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record["loadavg_start"] = os.getloadavg()[0]
    started, peak_rss = time.monotonic(), 0
    killed_for: tuple[str, str] | None = None  # (status, message) when the watch stopped the cell

    def watch(pid: int) -> str | None:  # the cell runs in its own process group: pgid == pid
        nonlocal peak_rss, killed_for
        rss = group_rss_bytes(pid)
        peak_rss = max(peak_rss, rss)
        elapsed = time.monotonic() - started
        if opts.mem_limit_bytes and rss > opts.mem_limit_bytes:
            killed_for = ("oom", f"resident memory {_gib(rss)} passed the limit {_gib(opts.mem_limit_bytes)} "
                                 f"(--mem-limit): this configuration (batch {cell.batch}) does not fit")
        elif elapsed > timeout and budget_cut:  # the user's budget, not the cell's fault: not a failure
            killed_for = ("skipped", f"stopped after {elapsed:.0f} s: the time budget ran out (--budget-min)")
        elif elapsed > timeout:
            killed_for = ("timeout", f"no result after {elapsed:.0f} s (per-cell limit)")
        return killed_for[1] if killed_for else None

    outcome = process.run_function(CELL_TARGET, cell.to_dict(), env=env, log=log_path, watch=watch)
    record["wall_s"] = outcome.wall_s
    record["loadavg_end"] = os.getloadavg()[0]
    record["watched_peak_rss_bytes"] = peak_rss
    ended = killed_for or _death(outcome.returncode, peak_rss, log_path)
    if outcome.has_result:
        record.update(outcome.result)
        pair = record["metrics"].get("pair")
        if pair and pair["status"] == PENDING:  # stopped during the pair: our own figures stand
            status, message = ended or ("error", "the cell exited before the pair finished")
            pair.update(status=status, message=f"stopped while the reference pair ran: {message}")
    else:
        record["status"], record["message"] = ended or ("error", "the cell exited 0 without a result")
    return record


def _death(returncode: int, peak_rss: int, log_path: Path) -> tuple[str, str] | None:
    """(status, message) of a cell process that ended abnormally; None after a clean exit."""
    if returncode == 0:
        return None
    if returncode == -signal.SIGKILL:
        return "oom", ("killed by SIGKILL (most likely the kernel's out-of-memory killer); "
                       f"peak resident memory seen {_gib(peak_rss)}")
    how = f"signal {signal.Signals(-returncode).name}" if returncode < 0 else f"exit code {returncode}"
    return "error", f"cell process died ({how}): {_log_tail(log_path)}"


def same_config_bigger_batch(a: Cell, b: Cell) -> bool:
    """b is a's configuration at a larger batch (skipped once a ran out of memory)."""
    ka, kb = a.to_dict(), b.to_dict()
    ka.pop("batch"), kb.pop("batch")
    return ka == kb and b.batch > a.batch


def run_sweep(cells: Sequence[Cell], opts: SweepOptions, on_record: Callable[[list[dict]], None],
              records: list[dict] | None = None) -> list[dict]:
    """Run every cell in order; `on_record(records)` after each one (write results there).

    On KeyboardInterrupt the running cell is recorded as `interrupted`, the remaining ones as
    `not_run`, `on_record` is called, and the interrupt propagates.
    """
    from tqdm import tqdm

    records = [] if records is None else records
    oom_cells: list[Cell] = []
    bar = tqdm(total=len(cells), unit="cell", disable=not opts.progress, dynamic_ncols=True,
               bar_format="{desc} |{bar:20}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
    try:
        for i, cell in enumerate(cells):
            bar.set_description_str(f"measuring {cell.label}")
            try:
                if any(same_config_bigger_batch(o, cell) for o in oom_cells):
                    rec = base_record(cell)
                    rec.update(status="skipped", message="a smaller batch of this configuration ran out of memory")
                elif opts.deadline is not None and time.monotonic() > opts.deadline:
                    rec = base_record(cell)
                    rec.update(status="skipped", message="time budget used up before this cell started")
                else:
                    rec = run_cell(cell, opts, i)
            except KeyboardInterrupt:
                rec = base_record(cell)
                rec.update(status="interrupted", message="interrupted (Ctrl-C) while measuring")
                records.append(rec)
                for rest in cells[i + 1:]:
                    r = base_record(rest)
                    r["message"] = "not run: sweep interrupted"
                    records.append(r)
                on_record(records)
                raise
            if rec["status"] == "oom":
                oom_cells.append(cell)
            records.append(rec)
            on_record(records)
            bar.update(1)
            if rec["status"] != "ok" and opts.progress:
                bar.write(f"  {cell.label}: {rec['status']}: {rec['message']}")
    finally:
        bar.close()
    return records
