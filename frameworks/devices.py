"""Which device each framework can compute on here, and the device a run uses (`--device`).

`probe` asks each framework, each in a fresh process (no CUDA state in the caller), what it sees of
CUDA: a `Sight` (GPU count, its CUDA build, why a CUDA build sees none). On a machine with no NVIDIA
device at all (no /dev/nvidia*, no nvidia-smi) no framework is started. `choose` is the decision,
pure so it is tested with fake sights: `auto` is the GPU when any framework sees one, else the
CPU; frameworks that cannot see the chosen device leave the run with a note; `gpu` with no framework
seeing one is a `UserError` naming what each sees (for `--plan`, the plan for a GPU instead).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from resnet_rosetta.common import process
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.host import machine_has_gpu
from . import load

DEVICES = ("auto", "cpu", "gpu")
NO_DEVICE = "no NVIDIA device on this machine (no /dev/nvidia* and no nvidia-smi)"


@dataclass(frozen=True)
class Sight:
    """What one framework sees of CUDA: `build` is e.g. "CUDA 13.0" (None: a CPU-only build),
    `error` the first line of the framework's own reason when a CUDA build sees no GPU."""

    count: int = 0
    build: str | None = None
    error: str = ""
    name: str = ""

    def text(self) -> str:
        """e.g. "1 GPU (NVIDIA H200)", "CPU-only build", "CUDA 13.0 build, cannot reach the driver: ..."."""
        if self.count:
            return f"{self.count} GPU{'s' if self.count > 1 else ''}" + (f" ({self.name})" if self.name else "")
        if self.build is None:
            return self.error or "CPU-only build"
        return f"{self.build} build, cannot reach the driver or a device: {self.error or 'no device found'}"


@dataclass(frozen=True)
class Choice:
    device: str  # "cpu" or "gpu"
    frameworks: list[str]
    notes: list[str]


def sight_of(framework: str) -> dict:
    """In a fresh process: `frameworks/<fw>/bench.py`'s `gpu_sight()` (count, build, error, name)."""
    return load(framework, "bench").gpu_sight()


def probe(frameworks: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300) -> dict[str, Sight]:
    """What each framework sees of CUDA; a probe that crashes counts as seeing none, with its reason."""
    if not machine_has_gpu():
        return {fw: Sight(error=NO_DEVICE) for fw in frameworks}
    sights = {}
    for fw in frameworks:
        try:
            sights[fw] = Sight(**process.call(f"{__name__}:sight_of", fw, timeout=timeout, env=env))
        except process.ProcessFailed as exc:
            sights[fw] = Sight(error=f"the probe failed: {exc}")
    return sights


def seen(sights: Mapping[str, Sight]) -> str:
    """"torch: 1 GPU (NVIDIA H200); paddle, flax: CPU-only build": what each framework sees, the
    frameworks that see the same grouped."""
    groups: dict[str, list[str]] = {}
    for fw, s in sights.items():
        groups.setdefault(s.text(), []).append(fw)
    return "; ".join(f"{', '.join(fws)}: {text}" for text, fws in groups.items())


def choose(requested: str, sights: Mapping[str, Sight], *, planning: bool = False,
           option: str = "--device") -> Choice:
    """The device of a run and the frameworks that take part (see the module docstring)."""
    if requested not in DEVICES:
        raise UserError(f"{option} must be one of {', '.join(DEVICES)}, found {requested!r}")
    seeing = [fw for fw, s in sights.items() if s.count > 0]
    everyone = list(sights)
    if requested == "cpu":
        return Choice("cpu", everyone, [])
    if requested == "auto" and not seeing:
        return Choice("cpu", everyone, [f"{option} auto: the CPU (no framework sees a GPU: {seen(sights)})"])
    if not seeing:
        if planning:
            return Choice("gpu", everyone, [f"planned for a GPU this machine does not have ({seen(sights)})"])
        raise UserError(f"{option} gpu: no framework sees a CUDA GPU ({seen(sights)}); run with {option} cpu")
    notes = [f"{option} auto: the GPU ({', '.join(seeing)} see{'s' if len(seeing) == 1 else ''} it)"
             ] if requested == "auto" else []
    notes += [f"{fw} left out (not started, not budgeted): it sees no GPU ({s.text()})"
              for fw, s in sights.items() if fw not in seeing]
    return Choice("gpu", seeing, notes)
