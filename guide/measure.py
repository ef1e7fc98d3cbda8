"""The guide's measured figures: the pitfalls' errors, first-call compile cost, bf16 error.

`measure()` runs `measure_framework` for every framework in its own process (common/process.py)
and writes docs/differences.json.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from typing import Any, Callable, Mapping

import numpy as np

from resnet_rosetta.common import host, process
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.frameworks import load as load_framework
from .pitfalls import BATCH, PITFALLS, TINY, Bench

COMPILE_MODELS = ((TINY.name, TINY, BATCH), ("resnet50", get_spec("resnet50"), 2))
DISTRIBUTIONS = {"torch": ("torch",), "paddle": ("paddlepaddle",), "flax": ("flax", "jax")}


def time_calls(call: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of each call; every call returns host NumPy, so device work is included."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def compile_cost(framework: str, spec: ResNetSpec, batch: int, repeats: int = 5) -> dict[str, float]:
    """First compiled call vs the steady state (median), and the steady eager call for scale."""
    x = np.random.default_rng(0).normal(size=(batch, spec.in_channels, spec.input_size, spec.input_size))
    demos = load_framework(framework, "demos")
    eager, compiled = demos.forward_calls(spec, random_weights(spec), x.astype(np.float32))
    first, *steady = time_calls(compiled, repeats + 1)
    eager_times = time_calls(eager, repeats + 1)[1:]  # the first eager call warms caches too
    return {"first_call_s": first, "steady_call_s": statistics.median(steady),
            "eager_call_s": statistics.median(eager_times)}


def bf16_error(framework: str, bench: Bench) -> float:
    """Relative logits error of the framework's bf16 path against the float64 oracle."""
    logits = load_framework(framework, "demos").bf16_run(bench.spec, bench.weights, bench.x)
    return bench.error({"logits": logits}, "eval")


def measure_framework(framework: str) -> dict[str, Any]:
    """Every figure of one framework (run in its own process by `measure`)."""
    bench = Bench()
    pitfalls = []
    for p in PITFALLS:
        if p.framework == framework:
            naive, correct = p.errors(bench)
            pitfalls.append({"name": p.name, "topic": p.topic, "mistake": p.mistake, "check": p.check,
                             "naive": naive, "correct": correct, "threshold": p.threshold,
                             "tolerance": p.tolerance})
    compiles = [{"model": name, "batch": batch, **compile_cost(framework, spec, batch)}
                for name, spec, batch in COMPILE_MODELS]
    return {"pitfalls": pitfalls, "compile": compiles, "bf16_error": bf16_error(framework, bench),
            "versions": {name: version(name) for name in DISTRIBUTIONS[framework]}}


# ---------------------------------------------------------------- all frameworks -> JSON

def measure(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Run every framework in its own process and write the figures the guide quotes to `path`."""
    load_average = round(os.getloadavg()[0], 1)
    per_framework = {}
    for framework in FRAMEWORKS:
        print(f"explain --measure: {framework} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as cache:  # cold Inductor cache: 'first call' on a fresh machine
            try:
                per_framework[framework] = process.call(f"{__name__}:measure_framework", framework,
                                                        env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
            except process.ProcessFailed as exc:
                raise UserError(f"measuring {framework} failed: {exc}") from None
    figures = {"about": _about(f"resnet-rosetta explain --measure {path}", load_average, per_framework),
               "tables": tables(per_framework)}
    atomic_write_text(path, json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return figures


def _about(command: str, load_average: float, per_framework: Mapping[str, Any]) -> dict[str, Any]:
    """How, where, when and with what the figures were measured."""
    versions = {"numpy": np.__version__}
    for result in per_framework.values():
        versions.update(result["versions"])
    return {"date": datetime.date.today().isoformat(), "command": command, "load_average": load_average,
            "machine": f"{host.describe()}, run on the CPU", "python": platform.python_version(),
            "versions": versions,
            "bench": f"{TINY.name} (resnet18 with depths {TINY.depths}, widths {TINY.widths}, {TINY.num_classes} "
                     f"classes), {TINY.input_size}x{TINY.input_size}, batch {BATCH}, random_weights(seed=0)"}


def tables(per_framework: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Topic name -> {columns, rows} of measured values, as the guide prints them."""
    pitfall_rows: dict[str, list[list[Any]]] = {}
    for framework, result in per_framework.items():
        for p in result["pitfalls"]:
            pitfall_rows.setdefault(p["topic"], []).append(
                [p["mistake"], framework, p["naive"], p["threshold"], p["correct"], p["tolerance"]])
    columns = ["naive port", "framework", "naive error", "claim: >", "correct port", "tolerance"]
    out = {topic: {"columns": columns, "rows": rows} for topic, rows in pitfall_rows.items()}
    out["pitfalls"] = {"columns": columns, "rows": [r for rows in pitfall_rows.values() for r in rows]}
    out["compilation"] = {
        "columns": ["framework", "model", "batch", "first call (s)", "steady call (s)", "eager call (s)"],
        "rows": [[fw, c["model"], c["batch"], c["first_call_s"], c["steady_call_s"], c["eager_call_s"]]
                 for fw, r in per_framework.items() for c in r["compile"]]}
    out["mixed-precision"] = {
        "columns": ["framework", "bf16 logits error vs float64 oracle"],
        "rows": [[fw, r["bf16_error"]] for fw, r in per_framework.items()]}
    return out
