"""`resnet-rosetta report`: the main job. Runs `list`, the parity checks and a benchmark sweep, and
writes one folder: index.md (summary, parity tables, benchmark tables, plots, environment) with the
JSON, CSV, plots and logs behind it.

Levels: --quick (resnet18 only, about 3-5 minutes), the default (resnet18 and resnet50, under 15
minutes on a 2-core CPU, parity included; cells not started within the budget are listed as
skipped), --full (every batch, precision and exec mode; hours on a small CPU). Passing any of
--arch/--mode/--batch/--precision/--exec replaces the preset sweep with exactly that sweep.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from resnet_rosetta.common import process
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.benchmarks import presets
from .bench import add_sweep_arguments, plan as plan_sweep, resolve_common, sweep_options

CUSTOM_KEYS = ("arch", "mode", "batch", "precision", "exec_modes")
PARITY_TIMEOUT = {"quick": 240.0, "default": 420.0, "full": 0.0}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="the main job: list + parity + benchmark sweep -> one report folder",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    level = p.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="resnet18 only: about 3-5 minutes")
    level.add_argument("--full", action="store_true", help="everything: every batch, precision, exec mode (hours)")
    p.add_argument("--out", default="report", help="output folder (default %(default)s); must not exist unless --overwrite")
    p.add_argument("--skip-parity", action="store_true", help="do not run the parity checks")
    p.add_argument("--parity-args", default="", help="extra arguments for `resnet-rosetta parity`, one string")
    p.add_argument("--parity-timeout", type=float, default=None,
                   help="seconds before parity is stopped (default: 240 quick, 420 default, none full)")
    p.add_argument("--budget-min", type=float, default=None,
                   help="minutes after which no new benchmark cell starts (default: 5 quick, 14.5 default, none full)")
    add_sweep_arguments(p, {"arch": None, "mode": None, "batch": None, "precision": None, "exec": None,
                            "warmup": 1, "timeout": 300.0, "rounds": presets.REPORT_ROUNDS})
    return p


def _run_subcommand(argv: list[str], log: Path, timeout: float | None) -> tuple[int | None, str]:
    """Run `resnet-rosetta ARGV` in a fresh process; (exit code or None when stopped at the timeout,
    combined output, also kept in `log`)."""
    outcome = process.run_module("resnet_rosetta.cli.main", argv, timeout=timeout, log=log)
    return outcome.returncode, outcome.output


def run_parity(out: Path, extra: list[str], timeout: float | None) -> dict:
    """The parity command with --json/--markdown; a failure is a result, never a crash."""
    import json
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
    elif code == 1:
        res["status"] = "failed"
        res.setdefault("message", "at least one check is out of tolerance")
    else:
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or [""]
        res.update(status="error", message=f"exit code {code}: {last[0][:300]}")
    return res


def run(args: argparse.Namespace) -> int:
    from resnet_rosetta.benchmarks import pipeline, report_index

    level = "quick" if args.quick else "full" if args.full else "default"
    t0 = time.monotonic()
    custom = any(getattr(args, k) is not None for k in CUSTOM_KEYS)
    if custom:
        for k, v in (("arch", "resnet18,resnet50"), ("mode", "infer,train"), ("batch", "16"), ("precision", "fp32"),
                     ("exec_modes", "default")):
            if getattr(args, k) is None:
                setattr(args, k, v)
        cells, probes, frameworks, threads, notes = plan_sweep(args)
        plan = presets.Plan("custom", cells, probes, budget_s=None, parity_args=[],
                            measures=[f"a custom sweep of {len(cells)} cells (see 'What was run')"],
                            skips=["everything outside that sweep"])
    else:
        frameworks, threads, notes = resolve_common(args)
        plan = presets.build_plan(level, frameworks, threads, args.device, warmup=args.warmup, iters=args.iters,
                                  repeats=args.repeats, repeat_s=args.repeat_s, rounds=args.rounds)
        if args.no_peak:
            plan.probes = []
    notes += pipeline.check_device(args.device, frameworks, threads)
    budget = args.budget_min * 60 if args.budget_min is not None else plan.budget_s
    parity_timeout = args.parity_timeout if args.parity_timeout is not None else PARITY_TIMEOUT[level]
    if parity_timeout < 0:
        raise UserError("--parity-timeout must be >= 0 (0 = no limit)")
    out = pipeline.prepare_out_dir(args.out, args.overwrite)

    meta = {"command": "resnet-rosetta " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "level": plan.level, "frameworks": ", ".join(frameworks), "cells planned": len(plan.cells),
            "threads per cell": threads, "time budget": f"{budget / 60:.1f} min" if budget else "none",
            "notes": list(notes)}
    for n in notes:
        print(f"report: {n}", file=sys.stderr)
    parity: dict = {"status": "not run", "message": "interrupted before parity"}
    list_text = None
    records: list[dict] = []
    interrupted = False
    try:
        print("report: resnet-rosetta list", file=sys.stderr)
        code, text = _run_subcommand(["list"], out / "logs" / "list.log", 120)
        list_text = text if code == 0 else f"(list failed with exit code {code})\n{text}"
        atomic_write_text(out / "list.txt", list_text)
        if args.skip_parity:
            parity = {"status": "skipped", "message": "--skip-parity"}
        else:
            extra = plan.parity_args + shlex.split(args.parity_args)
            if args.frameworks:
                extra += ["--frameworks", ",".join(frameworks)]
            print(f"report: resnet-rosetta parity {' '.join(extra)}", file=sys.stderr)
            parity = {"status": "interrupted", "message": "Ctrl-C while parity was running"}
            parity = run_parity(out, extra, parity_timeout or None)
            print(f"report: parity {parity['status']}", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    if not interrupted:
        # Stop a running cell 15 s before the budget ends (time to write the report); start none in the last 45 s.
        hard = (t0 + budget - 15.0) if budget else None
        opts = sweep_options(args, out, deadline=hard - 30.0 if hard else None, hard_deadline=hard)
        meta["per-cell memory limit"] = f"{opts.mem_limit_bytes / 2**30:.1f} GiB" if opts.mem_limit_bytes else "none"
        meta["per-cell time limit s"] = args.timeout
        records, interrupted = pipeline.execute(plan.cells, plan.probes, opts, meta)
    else:
        from resnet_rosetta.benchmarks.sweep import base_record
        meta["interrupted"] = True
        for cell in list(plan.probes) + list(plan.cells):
            rec = base_record(cell)
            rec["message"] = "not run: interrupted before the sweep"
            records.append(rec)
    meta["report duration s"] = round(time.monotonic() - t0, 1)
    derived = pipeline.write_outputs(out, records, meta, markdown_name="bench.md")
    files = [f for f in ("list.txt", "parity.md", "parity.json", "bench.md", "results.jsonl", "results.csv",
                         "summary.json") if (out / f).exists()] + derived.get("plots", []) + ["logs/"]
    atomic_write_text(out / "index.md", report_index.index_markdown(
        meta=meta, plan_measures=plan.measures, plan_skips=plan.skips, records=records, derived=derived,
        parity=parity, list_text=list_text, files=files))
    print(f"report: parity {parity['status']}; cells: {pipeline.status_line(records) or 'none'}; "
          f"{time.monotonic() - t0:.0f} s; {out / 'index.md'}")
    if interrupted:
        print(f"report: interrupted; what was finished is in {out / 'index.md'}", file=sys.stderr)
        return 130
    failed = parity["status"] in ("failed", "error", "timeout") or pipeline.exit_code(records, False) != 0
    return 1 if failed else 0
