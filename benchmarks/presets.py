"""The sweeps `resnet-rosetta report` runs: --quick, the default, --full.

Each plan lists its cells in priority order (what the bounds need first), a time budget after
which no new cell starts, and plain-language lines for the report: what it measures and what it
leaves out. The batch sizes depend on the device (`presets_for`): on a 2-core CPU (the costs
measured: docs/benchmarks.md) batch 4 for training, bf16 resnet18 at batch 1; on a GPU batches
64 / 128 / 256 and bf16 resnet50 at 256 in channels_last (NHWC) where the framework offers it.
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


@dataclass(frozen=True)
class Batches:
    """The batch sizes of the presets on one device."""

    infer: int  # the ours/reference inference cells
    train: int  # the ours/reference training cells
    best: int  # resnet50 fp32 inference in every compiled mode (the fraction-of-peak line)
    bf16_arch: str
    bf16: int  # the bf16 inference cells (beside fp32 at the same batch on CPU)
    quick_infer: int
    quick_train: int
    full: tuple[int, ...]
    full_bf16: tuple[int, ...]


PRESET_BATCHES = {
    "cpu": Batches(infer=16, train=4, best=16, bf16_arch="resnet18", bf16=1, quick_infer=8, quick_train=4,
                   full=(1, 8, 16, 32), full_bf16=(1, 8, 16)),
    "gpu": Batches(infer=128, train=64, best=256, bf16_arch="resnet50", bf16=256, quick_infer=128, quick_train=64,
                   full=(64, 128, 256), full_bf16=(64, 128, 256)),
}


def presets_for(device: str) -> Batches:
    """The presets' batch sizes on `device` ("cpu" or "gpu")."""
    return PRESET_BATCHES[device]


def _dedup(cells: Sequence[Cell]) -> list[Cell]:
    return list(dict.fromkeys(cells))


def build_plan(level: str, frameworks: Sequence[str], threads: int, device: str = "cpu", *, warmup: int = 1,
               iters: int = 0, repeats: int = 5, repeat_s: float = 1.0, rounds: int = REPORT_ROUNDS) -> Plan:
    """The level's cells, each measured with these timer settings (the report's defaults)."""
    timer = dict(warmup=warmup, repeats=repeats, repeat_s=repeat_s)
    kw = dict(device=device, threads=threads, iters=iters, rounds=rounds, **timer)
    fws = list(frameworks)
    b = presets_for(device)
    gpu = device == "gpu"
    probes = peak_cells(fws, device, threads, **timer)
    if level == "quick":
        # One probe (each costs a process start and a framework import): XLA's where available.
        xla_first = next(fw for fw in ("flax", "torch", "paddle") if fw in fws)
        probes = peak_cells([xla_first], device, threads, **timer)
        cells = (expand(["resnet18"], fws, ["infer"], [b.quick_infer], ["fp32"], ["default"], **kw)
                 + expand(["resnet18"], fws, ["train"], [b.quick_train], ["fp32"], ["default"], **kw))
        return Plan(level, _dedup(cells), probes, budget_s=5 * 60, parity_args=["--arch", "resnet18"],
                    measures=["parity of resnet18 (every framework vs the float64 oracle and each other)",
                              "resnet18 fp32 at 224 px, each framework in its usual mode "
                              f"({', '.join(f'{fw} {DEFAULT_EXEC[fw]}' for fw in fws)}), ours and the reference "
                              f"model: inference at batch {b.quick_infer}, training at batch {b.quick_train}",
                              f"the matmul peak of the machine in each math mode, probed with {probes[0].framework} only"],
                    skips=["resnet50", "compiled / eager alternatives", "bf16 models", "batch-size scaling",
                           "channels_last", "the matmul probes of the other frameworks"])
    if level == "default":
        # Inference (ratio and peak bounds) before the bf16 path and training, whose resnet50 cells cost
        # most: a busy machine that runs out of budget still covers the most bounds.
        def ratio(arch: str, mode: str, batch: int) -> list[Cell]:
            return expand([arch], fws, [mode], [batch], ["fp32"], ["default"], **kw)
        # CPU: bf16 beside fp32 at batch 1 (its own fp32 figure); GPU: bf16 at scale, torch in channels_last
        bf16 = expand([b.bf16_arch], fws, ["infer"], [b.bf16], ["bf16"] if gpu else ["fp32", "bf16"], ["default"],
                      channels_last=gpu, reference="none", **kw)
        best = expand(["resnet50"], fws, ["infer"], [b.best], ["fp32"], ["compiled"], reference="none", **kw)
        if "torch" in fws:
            best += expand(["resnet50"], ["torch"], ["infer"], [b.best], ["fp32"], ["eager"], channels_last=True,
                           reference="none", **kw)
            if not gpu:  # the bf16 bound's cell: torch's CPU recipe (channels_last, autocast, frozen inductor)
                bf16 += expand(["resnet50"], ["torch"], ["infer"], [b.best], ["bf16"], ["compiled"],
                               channels_last=True, reference="none", **kw)
        cells = (ratio("resnet18", "infer", b.infer) + ratio("resnet50", "infer", b.infer) + best + bf16
                 + ratio("resnet18", "train", b.train) + ratio("resnet50", "train", b.train))
        return Plan(level, _dedup(cells), probes, budget_s=14.5 * 60, parity_args=[],
                    measures=["parity of resnet18 and resnet50 (the parity command's defaults)",
                              "resnet18 and resnet50 fp32 at 224 px, each framework in its usual mode "
                              f"({', '.join(f'{fw} {DEFAULT_EXEC[fw]}' for fw in fws)}), ours and the reference "
                              f"model (our model alone, then both interleaved in {balanced_rounds(rounds)} ABBA "
                              f"rounds in the same process for the ratio): inference at batch {b.infer}, training at "
                              f"batch {b.train} (the ours/reference bound)",
                              f"resnet50 fp32 inference at batch {b.best} in the compiled mode of every framework and "
                              "torch eager channels_last (the fraction-of-peak bound)",
                              f"{b.bf16_arch} inference at batch {b.bf16} in "
                              f"{'bf16 (torch channels_last)' if gpu else 'fp32 and bf16'} (the bf16 path against the "
                              "bf16 peak)" + ("" if gpu else f"; resnet50 bf16 inference at batch {b.best}, torch "
                                              "compiled (frozen) in channels_last: the bf16 bound's cell"),
                              f"the matmul peak of the machine in each math mode ({'fp32 strict, tf32, bf16, fp16' if gpu else 'fp32, bf16'})"],
                    skips=["batch-size scaling (one batch size per mode)", "training in the compiled modes",
                           "JAX op-by-op (eager) execution",
                           "bf16 training" + ("" if gpu else " and bf16 at large batch"),
                           "reference models outside fp32 usual-mode cells",
                           "cells not started within the 14.5-minute budget (listed under 'Cells not measured')"])
    full = (expand(["resnet18", "resnet50"], fws, ["infer", "train"], b.full, ["fp32"], ["eager", "compiled"],
                   **kw)
            + expand(["resnet18", "resnet50"], ["torch"], ["infer", "train"], b.full, ["fp32"], ["eager", "compiled"],
                     channels_last=True, reference="none", **kw)
            + expand(["resnet18", "resnet50"], fws, ["infer", "train"], b.full_bf16, ["bf16"], ["eager", "compiled"],
                     channels_last=True, reference="all", **kw))
    # Data-parallel scaling on the CPU's cores (2 replicas, one device timed beside them in each cell)
    scaling = (expand(["resnet18"], fws, ["train"], [b.train], ["fp32"], ["default"], reference="none", devices=2,
                      **kw) if not gpu and threads >= 2 else [])
    return Plan("full", _dedup(full + scaling), probes, budget_s=None, parity_args=[],
                measures=["parity of resnet18 and resnet50",
                          "resnet18 and resnet50 at 224 px: inference and training, batch "
                          f"{', '.join(map(str, b.full))} (bf16: {', '.join(map(str, b.full_bf16))}), "
                          "fp32 and bf16, eager and compiled, torch also channels_last (bf16: channels_last only), "
                          "the reference model beside every cell",
                          *([f"data-parallel scaling: resnet18 fp32 training, batch {b.train} per replica, on 2 "
                             "replicas of each framework's engine against one device in the same cell"]
                            if scaling else []),
                          "the matmul peak of the machine in each math mode"],
                skips=["nothing by design; cells that time out or run out of memory are listed"])
