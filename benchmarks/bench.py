"""The `bench` job: plan the sweep from the parsed options, run every cell in a fresh process, and
write results.jsonl, results.csv, summary.json, report.md and the plots to --out."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from . import config, pipeline, report_md
from .plan import plan_sweep, plan_text, sweep_options


def run_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the sweep `args` describes (`argv`: the command line, recorded); the exit code: 0 all
    measured, 1 a cell failed, 130 interrupted. With --plan: print what would run, exit 0."""
    cells, probes, frameworks, threads, notes = plan_sweep(args)
    if args.plan:
        print(plan_text("bench", args.device, frameworks, cells, probes, None, notes), end="")
        return 0
    out = pipeline.prepare_out_dir(args.out, args.overwrite)
    opts = sweep_options(args, out)
    meta = {"command": pipeline.command_line(argv), "device": args.device,
            "cells planned": len(cells), "probes": len(probes), "threads per cell": threads,
            "warmup / iters / repeats": f"{args.warmup} / {args.iters or 'auto (~%gs per repeat)' % args.repeat_s} / "
                                        f"{args.repeats}",
            "ours/reference ABBA rounds": config.balanced_rounds(args.rounds),
            "per-cell time limit s": args.timeout,
            "per-cell memory limit": opts.mem_limit_text,
            "notes": notes}
    for n in notes:
        print(f"bench: {n}", file=sys.stderr)
    t0 = time.monotonic()
    records, interrupted = pipeline.execute(cells, probes, opts, meta)
    derived = pipeline.write_outputs(out, records, meta)
    print(report_md.scaling_terminal(derived["scaling"]), end="")
    print(f"bench: {pipeline.status_line(records)} on {args.device} in {time.monotonic() - t0:.0f} s; report: {out / 'report.md'}")
    if interrupted:
        print(f"bench: interrupted; the cells measured so far are in {out}", file=sys.stderr)
    return pipeline.exit_code(records, interrupted)
