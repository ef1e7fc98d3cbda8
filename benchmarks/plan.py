"""From the parsed `bench` / `report` options to what a sweep runs: the checked frameworks, threads
and device (`--device auto|cpu|gpu`, frameworks/devices.py), the cells and probes (a custom sweep,
or a report level's preset plan), `--plan`'s printout, and the `SweepOptions` of the run. Nothing
is written or imported from a framework here (the device probe runs each in a fresh process)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.host import thread_env
from resnet_rosetta.frameworks import devices
from . import config, presets
from .config import Cell
from .pipeline import check_frameworks
from .sweep import SweepOptions, default_mem_limit

# The options that make `report` run exactly the sweep given instead of a level's preset plan,
# and the value each takes there when not given (`bench`'s defaults).
CUSTOM_DEFAULTS = {"arch": "resnet18,resnet50", "mode": "infer,train", "batch": "16", "precision": "fp32",
                   "exec_modes": "default"}


def resolve_common(args: argparse.Namespace) -> tuple[list[str], int, list[str]]:
    """Check the options every sweep shares; (installed frameworks that see the device, threads,
    notes). `args.device` becomes the device chosen (auto resolved; `args.plan`: a GPU no framework
    sees is planned for, not refused)."""
    explicit = args.frameworks is not None
    frameworks = config.parse_frameworks(args.frameworks if explicit else ",".join(config.FRAMEWORKS))
    # sizes, timer settings and limits are checked where they enter (cli/bench.py, common/options.py)
    threads = args.threads if args.threads is not None else config.default_threads()
    if not 1 <= threads <= config.default_threads():
        raise UserError(f"--threads must be between 1 and {config.default_threads()} (the cores available)")
    frameworks, notes = check_frameworks(frameworks, explicit)
    sights = (dict.fromkeys(frameworks, devices.Sight()) if args.device == "cpu"
              else devices.probe(frameworks, env={**os.environ, **thread_env(threads)}))
    choice = devices.choose(args.device, sights, planning=getattr(args, "plan", False))
    args.device = choice.device
    check_devices(getattr(args, "devices", 1), choice.device, threads, {fw: sights[fw] for fw in choice.frameworks},
                  planning=getattr(args, "plan", False))
    return choice.frameworks, threads, notes + choice.notes


def check_devices(n: int, device: str, threads: int, sights: dict[str, devices.Sight], planning: bool = False) -> None:
    """`--devices N` (data parallel) against what the machine has: on CPU a thread per replica
    (N <= the sweep's threads, split evenly), on GPU N <= the GPUs each framework sees (except a
    framework that sees none under `--plan`: planned for a GPU machine it is not on)."""
    if n == 1:
        return
    if device == "cpu" and n > threads:
        raise UserError(f"--devices {n} needs a thread per replica on the CPU; the sweep has {threads} (--threads, "
                        f"or the cores this process may use)")
    short = {fw: s.count for fw, s in sights.items() if s.count < n and not (planning and s.count == 0)}
    if device == "gpu" and short:
        raise UserError(f"--devices {n} needs {n} GPUs; " + ", ".join(f"{fw} sees {c}" for fw, c in short.items()))


def plan_sweep(args: argparse.Namespace) -> tuple[list[Cell], list[Cell], list[str], int, list[str]]:
    """Validate the options and expand them into (cells, probes, frameworks, threads, notes)."""
    archs = config.parse_archs(args.arch)
    modes = config.parse_modes(args.mode)
    batches = config.parse_ints(args.batch, "--batch sizes")
    precisions = config.parse_precisions(args.precision)
    execs = config.parse_execs(args.exec_modes)
    n = getattr(args, "devices", 1)
    if n > 1 and modes != ["train"]:
        raise UserError(f"--devices {n} measures data-parallel training only: pass --mode train")
    frameworks, threads, notes = resolve_common(args)
    cells = config.expand(archs, frameworks, modes, batches, precisions, execs, channels_last=args.channels_last,
                          size=args.size, device=args.device, warmup=args.warmup, iters=args.iters,
                          repeats=args.repeats, threads=threads, repeat_s=args.repeat_s, reference=args.reference,
                          rounds=args.rounds, devices=n)
    probes = [] if args.no_peak else config.peak_cells(frameworks, args.device, threads, warmup=args.warmup,
                                                       repeats=args.repeats, repeat_s=args.repeat_s)
    return cells, probes, frameworks, threads, notes


def report_plan(args: argparse.Namespace, level: str) -> tuple[presets.Plan, list[str], int, list[str]]:
    """`report`'s (plan, frameworks, threads, notes): the level's preset, or exactly the sweep given
    when any of --arch/--mode/--batch/--precision/--exec was passed."""
    if any(getattr(args, k) is not None for k in CUSTOM_DEFAULTS):
        for k, v in CUSTOM_DEFAULTS.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
        cells, probes, frameworks, threads, notes = plan_sweep(args)
        plan = presets.Plan("custom", cells, probes, budget_s=None, parity_args=[],
                            measures=[f"a custom sweep of {len(cells)} cells (see 'What was run')"],
                            skips=["everything outside that sweep"])
        return plan, frameworks, threads, notes
    frameworks, threads, notes = resolve_common(args)
    plan = presets.build_plan(level, frameworks, threads, args.device, warmup=args.warmup, iters=args.iters,
                              repeats=args.repeats, repeat_s=args.repeat_s, rounds=args.rounds)
    if args.no_peak:
        plan.probes = []
    return plan, frameworks, threads, notes


def plan_text(command: str, device: str, frameworks: Sequence[str], cells: Sequence[Cell], probes: Sequence[Cell],
              budget_s: float | None, notes: Sequence[str], parity_args: Sequence[str] | None = None) -> str:
    """What `--plan` prints: the device, frameworks, budget, parity command (report), probes and
    cells in the order they would run; nothing is measured."""
    budget = (f"{budget_s / 60:g} min (no cell starts after it)" if budget_s else
              "none: every cell runs (each stopped after --timeout)")
    lines = [f"{command} plan on {device}: {', '.join(frameworks)}; {len(probes)} probes, {len(cells)} cells; "
             f"budget {budget}"]
    lines += [f"note: {n}" for n in notes]
    if parity_args is not None:
        lines.append("parity: resnet-rosetta parity " + " ".join(parity_args))
    lines += [f"probe: {c.label}" for c in probes] + [f"cell: {c.label}" for c in cells]
    return "\n".join(lines) + "\n"


def sweep_options(args: argparse.Namespace, out: Path, deadline: float | None = None,
                  hard_deadline: float | None = None) -> SweepOptions:
    mem = int(args.mem_limit * 2**30) if args.mem_limit else default_mem_limit()
    return SweepOptions(out_dir=out, timeout_s=args.timeout, mem_limit_bytes=mem, deadline=deadline,
                        hard_deadline=hard_deadline, progress=not args.no_progress, tf32=args.tf32,
                        mkl_amd=args.mkl_amd)
