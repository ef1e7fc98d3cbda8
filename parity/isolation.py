"""Run one framework's share of a parity case in this process or in its own worker process.

Isolated runs exchange everything as files in a run folder:
    case.safetensors        weights (w/KEY), inputs (x, y), step batches (bx/K, by/K), stagewise
                            feed (feed/STAGE); spec, SGD settings and checks as JSON in the header
    FRAMEWORK.safetensors   the worker's outputs ("{check}/{quantity}" -> array)
The worker is `worker()` below, started through common/process.py as a module of the installed
package; the numerics settings it applied come back as its JSON result. A worker may run under
another Python (`--python torch=/opt/torch-cuda/bin/python`) that has resnet-rosetta, NumPy,
safetensors and that framework installed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common import process
from resnet_rosetta.common.errors import Unsupported
from resnet_rosetta.common.spec import ResNetSpec
from . import engine


DETERMINISTIC_XLA = "--xla_gpu_deterministic_ops=true"


class WorkerFailed(Exception):
    """A framework could not produce its outputs; the message says which and why, in one line."""


def gpu_numerics_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables every parity process gets, read by CUDA libraries when they start: TF32 off in
    cuBLAS / cuDNN (`NVIDIA_TF32_OVERRIDE=0`, unless the user set it) and XLA's deterministic GPU
    kernels (added to `XLA_FLAGS`). Harmless on a CPU."""
    flags = environ.get("XLA_FLAGS", "")
    if DETERMINISTIC_XLA not in flags:
        flags = f"{flags} {DETERMINISTIC_XLA}".strip()
    return {"NVIDIA_TF32_OVERRIDE": environ.get("NVIDIA_TF32_OVERRIDE", "0"), "XLA_FLAGS": flags}


def save_case(case: engine.ParityCase, checks: tuple[str, ...], seed: int, path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {f"w/{k}": v for k, v in case.weights.items()}
    tensors["x"] = case.x
    for k, (bx, by) in enumerate(case.batches):
        tensors.update({f"bx/{k}": bx, f"by/{k}": by})
    tensors.update({f"feed/{k}": v for k, v in case.feed.items()})
    meta = {"spec": case.spec.to_json(), "hyper": json.dumps(dataclasses.asdict(case.hyper)),
            "checks": json.dumps(list(checks)), "seed": str(seed), "dtype": case.dtype, "device": case.device}
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
        feed={k[5:]: v for k, v in t.items() if k.startswith("feed/")}, dtype=meta["dtype"], device=meta["device"])
    return case, tuple(json.loads(meta["checks"])), int(meta["seed"])


def run_in_process(name: str, case: engine.ParityCase, checks: tuple[str, ...],
                   seed: int, port: object | None = None) -> tuple[engine.Outputs, dict[str, object]]:
    """Framework `name`'s outputs (on a user's model with `port`, see usermodel.py) and numerics."""
    numerics = frameworks.load(name).parity_numerics(seed)
    numerics["computed on"] = case.device  # where this run put the models, whatever the default backend
    if {"grad", "step", "steps"} & set(checks):
        numerics["optimizer"] = frameworks.load(name, "training").Trainer.CONVENTION
    return engine.framework_outputs(name, case, checks, port), numerics


def run_isolated(name: str, case_file: Path, run_dir: Path, python: str | None, timeout: float,
                 user: dict[str, object] | None = None) -> tuple[engine.Outputs, dict[str, object]]:
    """Run the worker for `name` in a fresh process (`user`: a user's model's fields, usermodel.py;
    then `name` is its participant); WorkerFailed on crash, timeout or bad Python."""
    from safetensors import safe_open

    exe = python or sys.executable
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **gpu_numerics_env()}
    try:
        outcome = process.run_function(f"{__name__}:worker", str(case_file), str(run_dir), name, user, python=exe,
                                       timeout=timeout, env=env, cwd=run_dir)
    except process.ProcessFailed as exc:
        raise WorkerFailed(f"{name}: {exc}") from None
    if outcome.stopped:
        raise WorkerFailed(f"{name}: worker exceeded the {timeout:g} s timeout and was stopped")
    out_file = run_dir / f"{name}.safetensors"
    if outcome.returncode != 0 or not outcome.has_result or not out_file.exists():
        hint = (" (install resnet-rosetta into that environment: pip install <this checkout>)"
                if "No module named 'resnet_rosetta'" in outcome.output else "")
        raise WorkerFailed(f"{name}: worker ({exe}) exited with status {outcome.returncode}: "
                           f"{outcome.last_line()}{hint}")
    if outcome.result["status"] == "unsupported":
        raise Unsupported(outcome.result["message"])
    with safe_open(str(out_file), framework="np") as f:  # safetensors sorts keys: restore execution order
        return {k: f.get_tensor(k) for k in json.loads(f.metadata()["order"])}, outcome.result["numerics"]


def worker(case_file: str, run_dir: str, name: str, user: dict[str, object] | None = None) -> dict[str, object]:
    """In the worker process: run `name` (or the user's model `user`) on the case and write its
    outputs to RUN_DIR/NAME.safetensors."""
    from safetensors.numpy import save_file
    from .usermodel import UserModel

    case, checks, seed = load_case(Path(case_file))
    model = UserModel(**user) if user else None  # type: ignore[arg-type]
    try:
        outputs, numerics = run_in_process(model.framework if model else name, case, checks, seed,
                                           model.port() if model else None)
    except Unsupported as exc:
        return {"status": "unsupported", "message": str(exc)}
    save_file({k: np.ascontiguousarray(v) for k, v in outputs.items()}, str(Path(run_dir) / f"{name}.safetensors"),
              metadata={"order": json.dumps(list(outputs))})
    return {"status": "ok", "numerics": json.loads(json.dumps(numerics, default=str))}
