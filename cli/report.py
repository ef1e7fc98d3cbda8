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
import sys

from resnet_rosetta.common.options import number
from resnet_rosetta.benchmarks import presets
from .bench import add_sweep_arguments


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="the main job: list + parity + benchmark sweep -> one report folder",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    level = p.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="resnet18 only: about 3-5 minutes")
    level.add_argument("--full", action="store_true", help="everything: every batch, precision, exec mode (hours)")
    p.add_argument("--out", default="report", help="output folder (default %(default)s); must not exist unless --overwrite")
    p.add_argument("--skip-parity", action="store_true", help="do not run the parity checks")
    p.add_argument("--parity-args", default="", help="extra arguments for `resnet-rosetta parity`, one string")
    p.add_argument("--parity-timeout", type=number("--parity-timeout", 0, 10**7, low_open=True), default=None,
                   help="seconds before parity is stopped (default: 240 quick, 420 default, none full)")
    p.add_argument("--budget-min", type=number("--budget-min", 0, 10**6, low_open=True), default=None,
                   help="minutes after which no new benchmark cell starts (default: 5 quick, 14.5 default, none full)")
    add_sweep_arguments(p, {"arch": None, "mode": None, "batch": None, "precision": None, "exec": None,
                            "warmup": 1, "timeout": 300.0, "rounds": presets.REPORT_ROUNDS})
    return p


def run(args: argparse.Namespace) -> int:
    from resnet_rosetta.benchmarks.report import run_report
    return run_report(args, sys.argv[1:])
