"""Run one framework's share of a parity case in this process or in its own worker process.

Isolated runs exchange everything as files in a run folder:
    case.safetensors        weights (w/KEY), inputs (x, y), step batches (bx/K, by/K), stagewise
                            feed (feed/STAGE); spec, SGD settings and checks as JSON in the header
    FRAMEWORK.safetensors   the worker's outputs ("{check}/{quantity}" -> array)
    FRAMEWORK.json          the numerics settings the worker applied
A worker may run under another Python (`--python torch=/opt/torch-cuda/bin/python`): it needs only
NumPy, safetensors and its framework, and finds this package through a small shim folder put on
its PYTHONPATH (it holds only `resnet_rosetta/`, never a folder named like a framework).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .. import frameworks
from ..common.errors import Unsupported
from ..common.spec import ResNetSpec
from . import engine

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding common/, frameworks/, parity/


UNSUPPORTED_EXIT = 3  # a worker's exit status for "this framework cannot run that here"


class WorkerFailed(Exception):
    """A framework could not produce its outputs; the message says which and why, in one line."""


def save_case(case: engine.ParityCase, checks: tuple[str, ...], seed: int, path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {f"w/{k}": v for k, v in case.weights.items()}
    tensors["x"] = case.x
    for k, (bx, by) in enumerate(case.batches):
        tensors.update({f"bx/{k}": bx, f"by/{k}": by})
    tensors.update({f"feed/{k}": v for k, v in case.feed.items()})
    meta = {"spec": case.spec.to_json(), "hyper": json.dumps(dataclasses.asdict(case.hyper)),
            "checks": json.dumps(list(checks)), "seed": str(seed), "dtype": case.dtype}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=meta)


def load_case(path: Path) -> tuple[engine.ParityCase, tuple[str, ...], int]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    hyper = engine.Hyper(**json.loads(meta["hyper"]))
    batches = tuple((t[f"bx/{k}"], t[f"by/{k}"]) for k in range(hyper.steps) if f"bx/{k}" in t)
    case = engine.ParityCase(
        spec=ResNetSpec.from_json(meta["spec"]),
        weights={k[2:]: v for k, v in t.items() if k.startswith("w/")},
        x=t["x"], batches=batches, hyper=hyper,
        feed={k[5:]: v for k, v in t.items() if k.startswith("feed/")}, dtype=meta["dtype"])
    return case, tuple(json.loads(meta["checks"])), int(meta["seed"])


def run_in_process(name: str, case: engine.ParityCase, checks: tuple[str, ...],
                   seed: int) -> tuple[engine.Outputs, dict[str, object]]:
    numerics = frameworks.load(name).parity_numerics(seed)
    if {"grad", "step", "steps"} & set(checks):
        numerics["optimizer"] = frameworks.load(name, "training").Trainer.CONVENTION
    return engine.framework_outputs(name, case, checks), numerics


def _shim(run_dir: Path) -> Path:
    """A folder whose only entry is `resnet_rosetta/`, linking to this package's sources."""
    pkg = run_dir / "pkg" / "resnet_rosetta"
    if not pkg.exists():
        pkg.mkdir(parents=True)
        for part in ("common", "frameworks", "parity"):
            (pkg / part).symlink_to(PACKAGE_ROOT / part, target_is_directory=True)
    return pkg.parent


def run_isolated(name: str, case_file: Path, run_dir: Path, python: str | None,
                 timeout: float) -> tuple[engine.Outputs, dict[str, object]]:
    """Run the worker for `name` in a fresh process; WorkerFailed on crash, timeout or bad Python."""
    from safetensors import safe_open

    exe = python or sys.executable
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_shim(run_dir)), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("NVIDIA_TF32_OVERRIDE", "0")
    cmd = [exe, "-m", "resnet_rosetta.parity.isolation", str(case_file), str(run_dir), name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=run_dir)
    except FileNotFoundError:
        raise WorkerFailed(f"{name}: python {exe} does not exist") from None
    except PermissionError:
        raise WorkerFailed(f"{name}: python {exe} is not executable") from None
    except subprocess.TimeoutExpired:
        raise WorkerFailed(f"{name}: worker exceeded the {timeout:g} s timeout and was stopped") from None
    out_file = run_dir / f"{name}.safetensors"
    unsupported = run_dir / f"{name}.unsupported"
    if proc.returncode == UNSUPPORTED_EXIT and unsupported.exists():
        raise Unsupported(unsupported.read_text().strip())
    if proc.returncode != 0 or not out_file.exists():
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise WorkerFailed(f"{name}: worker ({exe}) exited with status {proc.returncode}: {last}")
    numerics = json.loads((run_dir / f"{name}.json").read_text())
    with safe_open(str(out_file), framework="np") as f:  # safetensors sorts keys: restore execution order
        return {k: f.get_tensor(k) for k in json.loads(f.metadata()["order"])}, numerics


def worker_main(argv: list[str]) -> int:
    """Worker entry point: `python -m resnet_rosetta.parity.isolation CASE RUN_DIR FRAMEWORK`."""
    from safetensors.numpy import save_file

    case_file, run_dir, name = Path(argv[0]), Path(argv[1]), argv[2]
    case, checks, seed = load_case(case_file)
    try:
        outputs, numerics = run_in_process(name, case, checks, seed)
    except Unsupported as exc:
        (run_dir / f"{name}.unsupported").write_text(str(exc))
        return UNSUPPORTED_EXIT
    (run_dir / f"{name}.json").write_text(json.dumps(numerics, default=str))
    save_file({k: np.ascontiguousarray(v) for k, v in outputs.items()}, str(run_dir / f"{name}.safetensors"),
              metadata={"order": json.dumps(list(outputs))})
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
