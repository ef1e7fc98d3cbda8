"""From a planned sweep to a folder of results: output-folder safety, running the cells (progress bar, Ctrl-C) and writing JSON lines, CSV, Markdown and plots."""
from __future__ import annotations

import json
import shlex
import shutil
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import UserError
from . import plots, report_md, results
from .config import Cell, missing_modules
from .sweep import SweepOptions, run_sweep

MARKER = ".resnet-rosetta-output"
FAILED_STATUSES = ("error", "oom", "timeout")


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, recorded with the results: "resnet-rosetta bench --arch resnet18 ..."."""
    return "resnet-rosetta " + " ".join(shlex.quote(a) for a in argv)


def prepare_out_dir(path: str | Path, overwrite: bool) -> Path:
    """A fresh output folder. An existing non-empty one is refused, or replaced with --overwrite
    only if resnet-rosetta wrote it (marker file): old and new results are never mixed."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"output folder {out} already exists and is not empty; pass --overwrite to replace "
                            "it or choose another --out (old and new results are never mixed)")
        if not (out / MARKER).exists():
            raise UserError(f"refusing to --overwrite {out}: it was not written by resnet-rosetta "
                            f"(no {MARKER} file in it); remove it yourself or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by resnet-rosetta; `--overwrite` may delete this folder\n")
    return out


def check_frameworks(frameworks: Sequence[str], explicit: bool) -> tuple[list[str], list[str]]:
    """(usable, notes). A framework asked for by name but not installed is a user error;
    from the default list it is skipped with a note."""
    usable, notes = [], []
    for fw in frameworks:
        missing = missing_modules(fw)
        if not missing:
            usable.append(fw)
        elif explicit:
            raise UserError(f"framework {fw} is not installed (missing Python modules: {', '.join(missing)}); "
                            f"install it or leave it out of --frameworks")
        else:
            notes.append(f"{fw} skipped: not installed (missing {', '.join(missing)})")
    if not usable:
        raise UserError("none of the requested frameworks is installed")
    return usable, notes


def write_outputs(out: Path, records: list[dict], meta: dict, *, markdown_name: str = "report.md") -> dict:
    """results.jsonl, results.csv, summary.json, plots, and the Markdown report; returns derived."""
    derived = results.derive(records)
    results.write_jsonl(out / "results.jsonl", records)
    atomic_write_text(out / "results.csv", results.to_csv(records))
    written = []
    try:
        written = (plots.throughput_plots(records, out) + plots.ratio_plot(derived["ratios"], results.RATIO_BOUND, out)
                   + plots.best_plot(derived["best"], out))
    except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose the tables
        meta.setdefault("notes", []).append(f"plots failed: {type(exc).__name__}: {exc}")
    derived["plots"] = written
    summary = {"meta": meta, "peaks": derived["peaks"], "host_noise": derived["host_noise"],
               "ratios": derived["ratios"], "scaling": derived["scaling"], "status_counts": dict(Counter(r["status"] for r in records))}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    if markdown_name:
        atomic_write_text(out / markdown_name, report_md.bench_markdown(records, derived, meta, written))
    return derived


def execute(cells: Sequence[Cell], probes: Sequence[Cell], opts: SweepOptions, meta: dict) -> tuple[list[dict], bool]:
    """Run probes then cells; results.jsonl/csv are rewritten after every cell. Returns
    (records, interrupted)."""
    out = opts.out_dir
    t0 = time.monotonic()
    meta.setdefault("sweep started", datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def save(recs: list[dict]) -> None:
        results.write_jsonl(out / "results.jsonl", recs)
        atomic_write_text(out / "results.csv", results.to_csv(recs))

    records: list[dict] = []
    interrupted = False
    try:
        run_sweep(list(probes) + list(cells), opts, save, records)
    except KeyboardInterrupt:
        interrupted = True
    meta["sweep finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta["sweep duration s"] = round(time.monotonic() - t0, 1)
    meta["interrupted"] = interrupted
    return records, interrupted


def status_line(records: list[dict]) -> str:
    """e.g. "10 ok, 1 oom (model cells); 3 ok (peak probes)"."""
    parts = []
    for kind, what in (("model", "model cells"), ("peak", "peak probes")):
        counts = Counter(r["status"] for r in records if r["cell"].get("kind") == kind)
        if counts:
            parts.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: kv[0] != "ok"))
                         + f" ({what})")
    return "; ".join(parts) or "no cells"


def exit_code(records: list[dict], interrupted: bool) -> int:
    if interrupted:
        return 130
    pair_failed = any((results.reference_pair(r) or {}).get("status") in FAILED_STATUSES for r in records)
    return 1 if pair_failed or any(r["status"] in FAILED_STATUSES for r in records) else 0
