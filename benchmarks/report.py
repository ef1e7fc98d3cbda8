"""The `report` job: `list`, the parity checks and a benchmark sweep, each a fresh process, into one
folder whose index.md embeds them all (summary, parity, benchmark tables, plots, environment).
A failed, stopped or interrupted step is recorded in the report, never lost."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from resnet_rosetta.common import process
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import UserError
from . import pipeline, report_index, report_md
from .plan import plan_text, report_plan, sweep_options
from .presets import Plan
from .sweep import base_record

PARITY_TIMEOUT = {"quick": 240.0, "default": 420.0, "full": 0.0}  # seconds per level; 0: no limit
CLI_MODULE = "resnet_rosetta.cli.main"
FILES = ("list.txt", "parity.md", "parity.json", "bench.md", "results.jsonl", "results.csv", "summary.json")


def _run_subcommand(argv: list[str], log: Path, timeout: float | None) -> tuple[int | None, str]:
    """Run `resnet-rosetta ARGV` in a fresh process; (exit code or None when stopped at the timeout,
    combined output, also kept in `log`)."""
    outcome = process.run_module(CLI_MODULE, argv, timeout=timeout, log=log)
    return outcome.returncode, outcome.output


def run_parity(out: Path, extra: list[str], timeout: float | None) -> dict:
    """The parity command with --json/--markdown; a failure is a result, never a crash."""
    jpath, mpath = out / "parity.json", out / "parity.md"
    code, text = _run_subcommand(["parity", "--json", str(jpath), "--markdown", str(mpath), *extra],
                                 out / "logs" / "parity.log", timeout)
    res: dict = {"exit_code": code, "stdout": text, "doc": None, "markdown": None}
    if jpath.exists():
        try:
            res["doc"] = json.loads(jpath.read_text())
        except ValueError as exc:
            res["message"] = f"parity.json unreadable: {exc}"
    if mpath.exists():
        res["markdown"] = mpath.read_text()
    if code is None:
        res.update(status="timeout", message=f"stopped after {timeout:.0f} s (--parity-timeout)")
    elif code == 0 and res["doc"] is not None:
        res["status"] = "passed"
    elif code == 3 and res["doc"] is not None:  # parity's INCOMPLETE: a framework could not run in fp64
        res.update(status="incomplete", message=f"not run in float64: {', '.join(res['doc'].get('incomplete', []))}")
    elif code == 1:
        res["status"] = "failed"
        res.setdefault("message", "at least one check is out of tolerance")
    else:
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or [""]
        res.update(status="error", message=f"exit code {code}: {last[0][:300]}")
    return res


def _list_and_parity(args: argparse.Namespace, extra: list[str], out: Path,
                     timeout: float) -> tuple[str | None, dict, bool]:
    """`list`, then parity unless --skip-parity: (list text, parity result, interrupted by Ctrl-C)."""
    parity: dict = {"status": "not run", "message": "interrupted before parity"}
    list_text = None
    try:
        print("report: resnet-rosetta list", file=sys.stderr)
        code, text = _run_subcommand(["list"], out / "logs" / "list.log", 120)
        list_text = text if code == 0 else f"(list failed with exit code {code})\n{text}"
        atomic_write_text(out / "list.txt", list_text)
        if args.skip_parity:
            parity = {"status": "skipped", "message": "--skip-parity"}
        else:
            print(f"report: resnet-rosetta parity {' '.join(extra)}", file=sys.stderr)
            parity = {"status": "interrupted", "message": "Ctrl-C while parity was running"}
            parity = run_parity(out, extra, timeout or None)
            print(f"report: parity {parity['status']}", file=sys.stderr)
    except KeyboardInterrupt:
        return list_text, parity, True
    return list_text, parity, False


def _not_run(plan: Plan) -> list[dict]:
    """The records of a sweep that never started (Ctrl-C during list or parity)."""
    records = []
    for cell in list(plan.probes) + list(plan.cells):
        rec = base_record(cell)
        rec["message"] = "not run: interrupted before the sweep"
        records.append(rec)
    return records


def run_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The whole report from the parsed options (`argv`: the command line, recorded); the exit code:
    0 all passed, 1 parity or a cell failed, 130 interrupted (what was finished is written)."""
    level = "quick" if args.quick else "full" if args.full else "default"
    t0 = time.monotonic()
    plan, frameworks, threads, notes = report_plan(args, level)
    budget = args.budget_min * 60 if args.budget_min is not None else plan.budget_s
    parity_args = plan.parity_args + ["--device", args.device] + shlex.split(args.parity_args)
    if args.frameworks or args.device == "gpu":  # on a GPU: those that see it
        parity_args += ["--frameworks", ",".join(frameworks)]
    if args.plan:
        print(plan_text("report", args.device, frameworks, plan.cells, plan.probes, budget, notes,
                        None if args.skip_parity else parity_args), end="")
        return 0
    parity_timeout = args.parity_timeout if args.parity_timeout is not None else PARITY_TIMEOUT[level]
    if parity_timeout < 0:
        raise UserError("--parity-timeout must be >= 0 (0 = no limit)")
    out = pipeline.prepare_out_dir(args.out, args.overwrite)

    meta = {"command": pipeline.command_line(argv), "device": args.device,
            "level": plan.level, "frameworks": ", ".join(frameworks), "cells planned": len(plan.cells),
            "threads per cell": threads, "time budget": f"{budget / 60:.1f} min" if budget else "none",
            "notes": list(notes)}
    for n in notes:
        print(f"report: {n}", file=sys.stderr)
    list_text, parity, interrupted = _list_and_parity(args, parity_args, out, parity_timeout)
    if not interrupted:
        # Stop a running cell 15 s before the budget ends (time to write the report); start none in the last 45 s.
        hard = (t0 + budget - 15.0) if budget else None
        opts = sweep_options(args, out, deadline=hard - 30.0 if hard else None, hard_deadline=hard)
        meta["per-cell memory limit"] = opts.mem_limit_text
        meta["per-cell time limit s"] = args.timeout
        records, interrupted = pipeline.execute(plan.cells, plan.probes, opts, meta)
    else:
        meta["interrupted"] = True
        records = _not_run(plan)
    meta["report duration s"] = round(time.monotonic() - t0, 1)
    derived = pipeline.write_outputs(out, records, meta, markdown_name="bench.md")
    files = [f for f in FILES if (out / f).exists()] + derived.get("plots", []) + ["logs/"]
    atomic_write_text(out / "index.md", report_index.index_markdown(
        meta=meta, plan_measures=plan.measures, plan_skips=plan.skips, records=records, derived=derived,
        parity=parity, list_text=list_text, files=files))
    print(report_md.scaling_terminal(derived["scaling"]), end="")
    print(f"report: parity {parity['status']}; cells: {pipeline.status_line(records) or 'none'} on {args.device}; "
          f"{time.monotonic() - t0:.0f} s; {out / 'index.md'}")
    if interrupted:
        print(f"report: interrupted; what was finished is in {out / 'index.md'}", file=sys.stderr)
        return 130
    failed = parity["status"] in ("failed", "error", "timeout") or pipeline.exit_code(records, False) != 0
    return 1 if failed else 0
