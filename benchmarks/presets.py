"""The sweeps `resnet-rosetta report` runs: --quick, the default, --full.

Each plan lists its cells in priority order (what the bounds need first), a time budget after
which no new cell starts, and plain-language lines for the report: what it measures and what it
leaves out. Sized for a 2-core CPU (the costs measured: docs/benchmarks.md): batch 4 for
training, bf16 at batch 1, and the compiled extras last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .config import DEFAULT_EXEC, Cell, balanced_rounds, expand, peak_cells

LEVELS = ("quick", "default", "full")
# ABBA rounds per ours/reference pair in the report: fewer than `bench`'s 20 (the budget), at the
# cost of a little more noise in each ratio (docs/benchmarks.md).
REPORT_ROUNDS = 12


@dataclass
class Plan:
    level: str
    cells: list[Cell]
    probes: list[Cell]
    budget_s: float | None  # whole report (parity included); None = no limit
    parity_args: list[str]
    measures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)


def _dedup(cells: Sequence[Cell]) -> list[Cell]:
    return list(dict.fromkeys(cells))


def build_plan(level: str, frameworks: Sequence[str], threads: int, device: str = "cpu", *, warmup: int = 1,
               iters: int = 0, repeats: int = 5, repeat_s: float = 1.0, rounds: int = REPORT_ROUNDS) -> Plan:
    """The level's cells, each measured with these timer settings (the report's defaults)."""
    timer = dict(warmup=warmup, repeats=repeats, repeat_s=repeat_s)
    kw = dict(device=device, threads=threads, iters=iters, rounds=rounds, **timer)
    fws = list(frameworks)
    probes = peak_cells(fws, device, threads, **timer)
    if level == "quick":
        # One probe (each costs a process start and a framework import): XLA's where available.
        xla_first = next(fw for fw in ("flax", "torch", "paddle") if fw in fws)
        probes = peak_cells([xla_first], device, threads, **timer)
        cells = (expand(["resnet18"], fws, ["infer"], [8], ["fp32"], ["default"], **kw)
                 + expand(["resnet18"], fws, ["train"], [4], ["fp32"], ["default"], **kw))
        return Plan(level, _dedup(cells), probes, budget_s=5 * 60, parity_args=["--arch", "resnet18"],
                    measures=["parity of resnet18 (every framework vs the float64 oracle and each other)",
                              "resnet18 fp32 at 224 px, each framework in its usual mode "
                              f"({', '.join(f'{fw} {DEFAULT_EXEC[fw]}' for fw in fws)}), ours and the reference "
                              "model: inference at batch 8, training at batch 4",
                              f"the fp32 and bf16 matmul peak of the machine, probed with {probes[0].framework} only"],
                    skips=["resnet50", "compiled / eager alternatives", "bf16 models", "batch-size scaling",
                           "channels_last", "the matmul probes of the other frameworks"])
    if level == "default":
        # Inference (ratio and peak bounds) before the bf16 path and training, whose resnet50 cells cost
        # most: a busy machine that runs out of budget still covers the most bounds.
        def ratio(arch: str, mode: str, batch: int) -> list[Cell]:
            return expand([arch], fws, [mode], [batch], ["fp32"], ["default"], **kw)
        bf16 = expand(["resnet18"], fws, ["infer"], [1], ["fp32", "bf16"], ["default"], reference="none", **kw)
        best = expand(["resnet50"], fws, ["infer"], [16], ["fp32"], ["compiled"], reference="none", **kw)
        if "torch" in fws:
            best += expand(["resnet50"], ["torch"], ["infer"], [16], ["fp32"], ["eager"], channels_last=True,
                           reference="none", **kw)
        cells = (ratio("resnet18", "infer", 16) + ratio("resnet50", "infer", 16) + best + bf16
                 + ratio("resnet18", "train", 4) + ratio("resnet50", "train", 4))
        return Plan(level, _dedup(cells), probes, budget_s=14.5 * 60, parity_args=[],
                    measures=["parity of resnet18 and resnet50 (the parity command's defaults)",
                              "resnet18 and resnet50 fp32 at 224 px, each framework in its usual mode "
                              f"({', '.join(f'{fw} {DEFAULT_EXEC[fw]}' for fw in fws)}), ours and the reference "
                              f"model (our model alone, then both interleaved in {balanced_rounds(rounds)} ABBA "
                              "rounds in the same process for the ratio): inference at batch 16, training at "
                              "batch 4 (the ours/reference bound)",
                              "resnet50 fp32 inference at batch 16 in the compiled mode of every framework and "
                              "torch eager channels_last (the fraction-of-peak bound)",
                              "resnet18 inference at batch 1 in fp32 and bf16 (the bf16 path against the bf16 peak)",
                              "the fp32 and bf16 matmul peak of the machine"],
                    skips=["batch-size scaling (one batch size per mode)", "training in the compiled modes",
                           "JAX op-by-op (eager) execution", "bf16 training and bf16 at large batch",
                           "reference models outside fp32 usual-mode cells",
                           "cells not started within the 14.5-minute budget (listed under 'Cells not measured')"])
    full = (expand(["resnet18", "resnet50"], fws, ["infer", "train"], [1, 8, 16, 32], ["fp32"], ["eager", "compiled"],
                   **kw)
            + expand(["resnet18", "resnet50"], ["torch"], ["infer", "train"], [1, 8, 16, 32], ["fp32"], ["eager", "compiled"],
                     channels_last=True, reference="none", **kw)
            + expand(["resnet18", "resnet50"], fws, ["infer", "train"], [1, 8, 16], ["bf16"], ["eager", "compiled"],
                     reference="all", **kw))
    return Plan("full", _dedup(full), probes, budget_s=None, parity_args=[],
                measures=["parity of resnet18 and resnet50",
                          "resnet18 and resnet50 at 224 px: inference and training, batch 1, 8, 16, 32 (bf16: 1, 8, 16), "
                          "fp32 and bf16, eager and compiled, torch also channels_last, the reference model beside every cell",
                          "the fp32 and bf16 matmul peak of the machine"],
                skips=["nothing by design; cells that time out or run out of memory are listed"])
