"""What one benchmark cell is, and how a sweep expands into cells.

A *cell* is one (framework x implementation x configuration) measurement; every cell runs in its
own fresh process (see `sweep.py`), so nothing leaks from one cell to the next. This module is
pure Python (no framework import): the parent process plans the sweep with it.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.counting import macs
from resnet_rosetta.common.spec import PRESETS, get_spec
from resnet_rosetta.common.workload import WorkloadConfig
from resnet_rosetta.frameworks import FRAMEWORKS

MODES = ("infer", "train")
PRECISIONS = ("fp32", "bf16")
EXECS = ("eager", "compiled")
# How each framework is normally run; `--exec default` means this, and the ours/reference
# bound is judged here. JAX's usual mode is jit: op-by-op JAX is not how Flax models are run.
DEFAULT_EXEC = {"torch": "eager", "paddle": "eager", "flax": "compiled"}
CHANNELS_LAST = ("torch", "paddle")  # the frameworks with an NHWC switch (Flax is NHWC already)
DEVICES = ("cpu", "gpu")
REFERENCE_POLICIES = ("fp32", "all", "none")

# The Python module that must be importable for each framework.
FRAMEWORK_MODULES = {"torch": ("torch", "torchvision"), "paddle": ("paddle",), "flax": ("jax", "flax", "optax")}

# What "eager" and "compiled" mean in each framework (shown in the report).
EXEC_MEANING = {
    ("torch", "eager"): "PyTorch eager",
    ("torch", "compiled"): "torch.compile (inductor; CPU inference with inductor freezing)",
    ("paddle", "eager"): "Paddle dygraph",
    ("paddle", "compiled"): "paddle.jit.to_static (full_graph=True; SOT if the model cannot be transcribed)",
    ("flax", "eager"): "JAX op-by-op dispatch (no jit)",
    ("flax", "compiled"): "jax.jit (train state donated)",
}

# Architectures each framework's own model zoo provides (the reference rows).
REFERENCE_ARCHS = {
    "torch": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
              "wide_resnet50_2"),
    "paddle": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
               "wide_resnet50_2"),
    "flax": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
}
REFERENCE_NAME = {"torch": "torchvision.models", "paddle": "paddle.vision.models",
                  "flax": "frameworks/flax/reference.py"}

STATUSES = ("ok", "error", "oom", "timeout", "unsupported", "interrupted", "not_run")


def balanced_rounds(n: int) -> int:
    """`n` rounded up to even: an ABBA sequence gives each model the first slot equally often."""
    return n + n % 2


@dataclass(frozen=True)
class Cell:
    """One measurement. `kind` is "model" (a ResNet step) or "peak" (the matmul peak probe).

    `with_reference`: after our model is measured alone, the framework's reference model is built
    in the same process and both are timed interleaved (ABBA rounds): the ours/reference ratio.
    """

    framework: str
    kind: str = "model"
    arch: str = ""
    impl: str = "ours"
    mode: str = "infer"
    batch: int = 16
    precision: str = "fp32"
    execution: str = "eager"
    channels_last: bool = False
    size: int = 224
    device: str = "cpu"
    warmup: int = 2
    iters: int = 0  # 0: auto, about `repeat_s` seconds per repeat
    repeats: int = 5
    threads: int = 1
    repeat_s: float = 1.0
    with_reference: bool = False
    rounds: int = 0  # ABBA rounds of the ours/reference pair; 0: as many as `repeats`
    devices: int = 1  # data-parallel replicas (train only); `batch` is per replica (benchmarks/dp.py)

    @property
    def global_batch(self) -> int:
        return self.batch * self.devices

    @property
    def layout(self) -> str:
        if self.framework == "flax":
            return "NHWC"
        if self.framework == "torch" and self.channels_last:
            return "NHWC (channels_last)"
        if self.framework == "paddle" and self.channels_last:
            return "NHWC (data_format)"
        return "NCHW"

    @property
    def label(self) -> str:
        if self.kind == "peak":
            return f"matmul peak probe ({self.framework}, {self.device})"
        cl = " channels_last" if self.channels_last else ""
        who = f"{self.impl}+reference" if self.with_reference else self.impl
        dp = f" x{self.devices} devices" if self.devices > 1 else ""
        return (f"{self.arch} {self.framework}/{who} {self.mode} b{self.batch}{dp} {self.precision} "
                f"{self.execution}{cl} {self.size}px")

    @property
    def pair_rounds(self) -> int:
        """ABBA rounds of the ours/reference pair: `rounds` (or `repeats`), balanced."""
        return balanced_rounds(self.rounds or self.repeats)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_")

    def flops_per_image(self) -> int:
        """2 x MACs for a forward pass; training counts forward + backward as 3 forwards."""
        if self.kind != "model":
            return 0
        f = 2 * macs(get_spec(self.arch), self.size)
        return 3 * f if self.mode == "train" else f

    @property
    def model(self) -> str | None:
        """The network a model cell times: ours (its framework's model.py) or the framework's reference."""
        if self.kind != "model":
            return None
        return f"frameworks/{self.framework}/model.py" if self.impl == "ours" else REFERENCE_NAME[self.framework]

    @property
    def reference_model(self) -> str | None:
        """The reference timed beside ours in this cell's pair, if it has one."""
        return REFERENCE_NAME[self.framework] if self.kind == "model" and self.with_reference else None

    def workload_config(self, impl: str | None = None, devices: int | None = None) -> WorkloadConfig:
        """What the runner builds for this cell: our model, or the reference with impl="reference";
        `devices=1`: the one-device baseline of a data-parallel cell."""
        return WorkloadConfig(arch=self.arch, impl=impl or self.impl, mode=self.mode, batch=self.batch,
                              precision=self.precision, execution=self.execution,
                              channels_last=self.channels_last, size=self.size, device=self.device,
                              devices=devices or self.devices)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["exec"] = d.pop("execution")
        d["layout"] = self.layout
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Cell":
        d = dict(d)
        d["execution"] = d.pop("exec")
        d.pop("layout", None)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def split_csv(text: str | Sequence[str] | None) -> list[str]:
    if text is None:
        return []
    if not isinstance(text, str):
        text = ",".join(text)
    return [t.strip() for t in text.split(",") if t.strip()]


def _choices(text: str | Sequence[str], allowed: Iterable[str], what: str) -> list[str]:
    allowed = tuple(allowed)
    values = split_csv(text)
    if not values:
        raise UserError(f"no {what} given; choose from {', '.join(allowed)}")
    for v in values:
        if v not in allowed:
            raise UserError(f"unknown {what} {v!r}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(values))


def parse_archs(text: str | Sequence[str]) -> list[str]:
    return _choices(text, PRESETS.names(), "architecture")


def parse_frameworks(text: str | Sequence[str]) -> list[str]:
    return _choices(text, FRAMEWORKS, "framework")


def parse_modes(text: str | Sequence[str]) -> list[str]:
    return _choices(text, MODES, "mode")


def parse_precisions(text: str | Sequence[str]) -> list[str]:
    return _choices(text, PRECISIONS, "precision")


def parse_execs(text: str | Sequence[str]) -> list[str]:
    """eager, compiled, or default (each framework's usual mode, `DEFAULT_EXEC`)."""
    return _choices(text, EXECS + ("default",), "exec mode")


def parse_ints(text: str | Sequence[str], what: str, minimum: int = 1) -> list[int]:
    out = []
    for v in split_csv(text):
        try:
            n = int(v)
        except ValueError:
            raise UserError(f"{what} must be integers, found {v!r}") from None
        if n < minimum:
            raise UserError(f"{what} must be >= {minimum}, found {n}")
        out.append(n)
    if not out:
        raise UserError(f"no {what} given")
    return list(dict.fromkeys(out))


def missing_modules(framework: str) -> list[str]:
    """Python modules a framework needs that are not importable here (cheap: no import)."""
    return [m for m in FRAMEWORK_MODULES[framework] if importlib.util.find_spec(m) is None]


def default_threads() -> int:
    """Cores this process may run on (respects taskset / cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def has_reference(framework: str, arch: str) -> bool:
    return arch in REFERENCE_ARCHS[framework]


def expand(archs: Sequence[str], frameworks: Sequence[str], modes: Sequence[str], batches: Sequence[int],
           precisions: Sequence[str], execs: Sequence[str], *, channels_last: bool = False, size: int = 224,
           device: str = "cpu", warmup: int = 2, iters: int = 0, repeats: int = 5, threads: int = 1,
           repeat_s: float = 1.0, reference: str = "fp32", rounds: int = 0, devices: int = 1) -> list[Cell]:
    """Our model's cell for every configuration; where a reference model is wanted, the cell also
    measures the ours/reference ratio (`with_reference`).

    `execs` may contain "default" (each framework's usual mode). `reference`: "fp32" pairs every
    fp32 cell with its reference (what the ours/reference bound needs), "all" every cell, "none"
    none; a data-parallel cell (`devices` > 1) has no reference (its pair is the one-device
    baseline, benchmarks/dp.py). channels_last applies to torch (memory format) and Paddle (`data_format="NHWC"`, our model only:
    paddle.vision's is NCHW, so such a cell has no reference); Flax is NHWC anyway.
    """
    if reference not in REFERENCE_POLICIES:
        raise UserError(f"unknown reference policy {reference!r}; known: {', '.join(REFERENCE_POLICIES)}")
    cells: list[Cell] = []
    for arch, mode, batch, precision, exec_choice, fw in itertools.product(
            archs, modes, batches, precisions, execs, frameworks):
        execution = DEFAULT_EXEC[fw] if exec_choice == "default" else exec_choice
        wants_ref = devices == 1 and (reference == "all" or (reference == "fp32" and precision == "fp32"))
        cells.append(Cell(framework=fw, arch=arch, mode=mode, batch=batch, precision=precision, execution=execution,
                          channels_last=channels_last and fw in CHANNELS_LAST, size=size, device=device,
                          warmup=warmup, iters=iters, repeats=repeats, threads=threads, repeat_s=repeat_s,
                          with_reference=wants_ref and has_reference(fw, arch) and not (channels_last and fw == "paddle"),
                          rounds=rounds, devices=devices))
    return list(dict.fromkeys(cells))


def peak_cells(frameworks: Sequence[str], device: str, threads: int, *, warmup: int = 2, repeats: int = 5,
               repeat_s: float = 1.0) -> list[Cell]:
    """One matmul probe per framework; its host-noise loop is timed with the model cells' settings."""
    return [Cell(framework=fw, kind="peak", device=device, threads=threads, warmup=warmup, repeats=repeats,
                 repeat_s=repeat_s) for fw in frameworks]
