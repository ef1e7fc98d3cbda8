"""Parity results as a terminal table, a JSON document and Markdown tables.

JSON schema (version 1):
    {"schema": "resnet-rosetta-parity/1",
     "environment": {"python", "platform", "cpu", "cpu_count", "numpy"},
     "settings": {"archs", "size", "batch", "seed", "dtype", "checks", "isolate", "weights"},
     "numerics": {framework: {switch: value, ...}},      # TF32, determinism, versions, threads
     "errors": {framework: "what went wrong"},            # frameworks that could not run
     "checks": [{"arch", "check", "left", "right", "passed",
                 "worst": ROW, "first_divergence": ROW | null, "rows": [ROW, ...]}],
     "passed": bool}
    ROW = {"quantity", "max_abs", "max_rel", "tolerance", "passed"}
`rows` are in execution order, so `first_divergence` is the earliest failing quantity and every
row before it is the error history leading up to it.
"""
from __future__ import annotations

import json
import os
import platform
from typing import Any, Iterable

import numpy as np

from .engine import Comparison, Row

SCHEMA = "resnet-rosetta-parity/1"


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "numpy": np.__version__}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _row(r: Row) -> dict[str, Any]:
    return {"quantity": r.quantity, "max_abs": r.max_abs, "max_rel": r.max_rel,
            "tolerance": r.tolerance, "passed": r.passed}


def to_json(comparisons: list[Comparison], settings: dict[str, Any], numerics: dict[str, Any],
            errors: dict[str, str]) -> dict[str, Any]:
    checks = [{"arch": c.arch, "check": c.check, "left": c.left, "right": c.right, "passed": c.passed,
               "worst": _row(c.worst), "first_divergence": _row(c.first_divergence) if c.first_divergence else None,
               "rows": [_row(r) for r in c.rows]} for c in comparisons]
    return {"schema": SCHEMA, "environment": environment(), "settings": settings, "numerics": numerics,
            "errors": errors, "checks": checks, "passed": passed(comparisons, errors)}


def passed(comparisons: Iterable[Comparison], errors: dict[str, str]) -> bool:
    return not errors and all(c.passed for c in comparisons)


def _pair(c: Comparison) -> str:
    return f"{c.left} vs {c.right}"


def _grouped(comparisons: list[Comparison]) -> dict[tuple[str, str], list[Comparison]]:
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((c.arch, c.check), []).append(c)
    return groups


def terminal(comparisons: list[Comparison]) -> str:
    """Per arch and check: one line per pair, worst relative error per quantity, pass/fail."""
    lines: list[str] = []
    for (arch, check), comps in _grouped(comparisons).items():
        quantities = [r.quantity for r in comps[0].rows]
        show = quantities if len(quantities) <= 8 else None
        lines.append(f"\n{arch} · {check} (max relative error, to max |reference|)")
        header = f"  {'pair':<18}" + ("".join(f"{q[:10]:>11}" for q in show) if show else
                                      f"{'worst quantity':>34}{'max rel':>11}")
        lines.append(header + f"{'abs@worst':>11}{'tol':>9}  result")
        for c in comps:
            cells = ("".join(f"{r.max_rel:>11.2e}" for r in c.rows) if show else
                     f"{c.worst.quantity[-34:]:>34}{c.worst.max_rel:>11.2e}")
            verdict = "PASS" if c.passed else f"FAIL (first divergence: {c.first_divergence.quantity})"  # type: ignore[union-attr]
            lines.append(f"  {_pair(c):<18}{cells}{c.worst.max_abs:>11.2e}{c.rows[0].tolerance:>9.0e}  {verdict}")
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    """One table per arch x check (pair x metric), then first divergences and the settings."""
    out = ["# Parity report", "",
           f"Overall: **{'PASS' if doc['passed'] else 'FAIL'}**. Errors are relative to the reference "
           "tensor's max magnitude; the oracle is a float64 NumPy implementation.", ""]
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in doc["checks"]:
        by_group.setdefault((c["arch"], c["check"]), []).append(c)
    for (arch, check), comps in by_group.items():
        out += [f"## {arch} · {check}", "",
                "| pair | worst quantity | max abs | max rel | tolerance | result |",
                "|---|---|---|---|---|---|"]
        for c in comps:
            w = c["worst"]
            out.append(f"| {c['left']} vs {c['right']} | {w['quantity']} | {w['max_abs']:.2e} | {w['max_rel']:.2e} "
                       f"| {w['tolerance']:.0e} | {'pass' if c['passed'] else 'FAIL'} |")
        out.append("")
        for c in comps:
            fd = c["first_divergence"]
            if fd:
                history = ", ".join(f"{r['quantity']} {r['max_rel']:.1e}" for r in c["rows"][:c["rows"].index(fd) + 1])
                out += [f"First divergence, {c['left']} vs {c['right']}: **{fd['quantity']}** "
                        f"({fd['max_rel']:.2e} > {fd['tolerance']:.0e}); errors up to it: {history}", ""]
    for fw, err in doc["errors"].items():
        out += [f"**{fw} did not run:** {err}", ""]
    out += ["## Settings", "", "```json", json.dumps({"settings": doc["settings"], "numerics": doc["numerics"],
                                                      "environment": doc["environment"]}, indent=2), "```", ""]
    return "\n".join(out)

