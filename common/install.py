"""What `./run` installs into its venv, decided here so that it is tested (tests/common/test_install.py).

PyPI's `paddlepaddle` is CPU-only; Paddle's GPU wheel, `paddlepaddle-gpu`, comes from Paddle's own
package index and installs into the same `paddle` folder. `pip install -e .` would put the CPU
wheel over it, so `./run` installs the project without its dependencies, then the requirements this
module lists: every requirement of the extras wanted, but not `paddlepaddle` when `paddlepaddle-gpu`
is installed. The `gpu` extra (JAX's CUDA plugin) is wanted on a machine with an NVIDIA device or
beside a GPU Paddle. PaddleClas, a peer the tests judge weights against, goes in without its
dependencies (`WITHOUT_DEPS`): it pins numpy==1.24.4 and OpenCV <= 4.6 for its applications, and the
tests import only its ResNet file. Run by `./run` from the checkout as `python -m common.install extras`,
`... requirements EXTRAS` and `... without-deps EXTRAS` (standard library only: it runs before the install).
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from typing import Iterable, Sequence

from .host import machine_has_gpu

PROJECT = "resnet-rosetta"
GPU_PADDLE, CPU_PADDLE = "paddlepaddle-gpu", "paddlepaddle"
# `extra == "NAME"` in a requirement's marker, with the `and` that joins it to other conditions
EXTRA = re.compile(r"""(?:\s+and\s+)?\bextra\s*==\s*["']([^"']+)["'](?:\s+and\s+)?""")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(names: Iterable[str] = (GPU_PADDLE,)) -> set[str]:
    """Which of `names` are installed in this Python (a look-up by name, not a scan of them all)."""
    found = set()
    for name in names:
        try:
            metadata.distribution(name)
            found.add(canonical(name))
        except metadata.PackageNotFoundError:
            continue
    return found


def extras(present: Iterable[str], has_gpu: bool) -> list[str]:
    """The project's extras to install: `test` always, `gpu` on a GPU machine or beside a GPU Paddle."""
    return ["test"] + (["gpu"] if has_gpu or GPU_PADDLE in set(present) else [])


def requirements(requires: Iterable[str], wanted: Sequence[str], present: Iterable[str]) -> list[str]:
    """The requirement strings of the core and the `wanted` extras (from the project's metadata),
    without PyPI's CPU Paddle when the GPU wheel is `present`."""
    skip = {CPU_PADDLE} if GPU_PADDLE in set(present) else set()
    out = []
    for line in requires:
        spec, _, marker = (part.strip() for part in line.partition(";"))
        extra = EXTRA.search(marker)
        if extra and extra.group(1) not in wanted:
            continue
        if canonical(re.split(r"[\s<>=!~\[(]", spec, maxsplit=1)[0]) in skip:
            continue
        rest = EXTRA.sub("", marker).strip() if extra else marker  # other conditions (a platform) stay
        out.append(f"{spec}; {rest}" if rest else spec)
    return out


WITHOUT_DEPS = {"test": ["paddleclas==2.6.0"]}


def without_deps(wanted: Sequence[str]) -> list[str]:
    """Requirements of the `wanted` extras that pip must install with --no-deps."""
    return [req for extra in wanted for req in WITHOUT_DEPS.get(extra, [])]


def main(argv: Sequence[str]) -> int:
    """`extras`: the extras, comma-separated; `requirements EXTRAS`: one requirement a line."""
    present = installed()
    if list(argv) == ["extras"]:
        print(",".join(extras(present, machine_has_gpu())))
        return 0
    if len(argv) == 2 and argv[0] == "requirements":
        print("\n".join(requirements(metadata.requires(PROJECT) or [], argv[1].split(","), present)))
        return 0
    if len(argv) == 2 and argv[0] == "without-deps":
        print("\n".join(without_deps(argv[1].split(","))))
        return 0
    print("usage: python -m common.install extras | requirements EXTRA,... | without-deps EXTRA,...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
