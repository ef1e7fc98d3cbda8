"""`train --compare`: the same run once per framework, each in a fresh process (the same seed, so
the same initial weights), then a Markdown table and a PNG of the curves overlaid."""
from __future__ import annotations

import dataclasses
import resource
from pathlib import Path
from typing import Any, Sequence

from resnet_rosetta.common import process
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import UserError
from .checkpoint import CHECKPOINT_SUFFIX, default_out, load_checkpoint, state_path
from .config import TrainConfig
from .plots import plot_curves


def run_compare(config: TrainConfig, names: Sequence[str], out: Path | None) -> int:
    """Train `config` in each framework of `names`; checkpoints <out>-<fw>, then <out>-compare.md / .png."""
    base = out or default_out(config, with_framework=False)
    state_path(base)
    stem = base.with_name(base.name[: -len(CHECKPOINT_SUFFIX)])
    runs: dict[str, dict[str, Any]] = {}
    for fw in names:
        ckpt = stem.with_name(f"{stem.name}-{fw}{CHECKPOINT_SUFFIX}")
        argv = ["train", "--out", str(ckpt), *command_options(dataclasses.replace(config, framework=fw))]
        cpu_start = _children_cpu()
        outcome = process.run_module("resnet_rosetta.cli.main", argv, inherit_output=True)
        code, wall, cpu = outcome.returncode, outcome.wall_s, _children_cpu() - cpu_start
        if code != 0:
            raise UserError(f"the {fw} run failed (exit status {code}); its message is above")
        runs[fw] = {"history": load_checkpoint(ckpt)[2].history, "wall": wall, "cpu": cpu}
    table = compare_table(runs)
    md_path, png_path = stem.with_name(f"{stem.name}-compare.md"), stem.with_name(f"{stem.name}-compare.png")
    atomic_write_text(md_path, f"# {config.dataset}, {config.arch}, seed {config.seed}\n\n{table}\n")
    plot_curves(runs, png_path, title=f"{config.dataset}, {config.arch}, same initial weights (seed {config.seed})")
    print(table)
    print(f"wrote {md_path} and {png_path}")
    return 0


def _children_cpu() -> float:
    """CPU seconds (user + system) used by finished child processes: on a shared machine this says
    more about a run's cost than its wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command_options(config: TrainConfig) -> list[str]:
    """The `train` options that reproduce `config` (every field is an option of the same name)."""
    options = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is not None:
            options += [f"--{f.name.replace('_', '-')}", repr(value) if isinstance(value, float) else str(value)]
    return options


def compare_table(runs: dict[str, dict[str, Any]]) -> str:
    """Markdown: the last epoch of every run, and the spread of the final test accuracies."""
    lines = ["| framework | epochs | train loss | train acc | test acc | epochs' time (s) | wall time (s) | "
             "CPU time (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for fw, r in runs.items():
        last = r["history"][-1]
        lines.append(f"| {fw} | {last['epoch']} | {last['train_loss']:.4f} | {100 * last['train_acc']:.2f}% | "
                     f"{100 * last['test_acc']:.2f}% | {sum(h['seconds'] for h in r['history']):.1f} | "
                     f"{r['wall']:.1f} | {r['cpu']:.1f} |")
    finals = [100 * r["history"][-1]["test_acc"] for r in runs.values()]
    lines.append(f"\nfinal test accuracy spread (max - min): {max(finals) - min(finals):.2f} percentage points")
    return "\n".join(lines)
