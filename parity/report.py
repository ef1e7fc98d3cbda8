"""Parity results as a terminal table, a JSON document (schema `resnet-rosetta-parity/2`, described
field by field in docs/parity.md) and Markdown tables; an fp64 run's verdict also as one line
(`proof_line`), the one `parity` and `report` print beside the fp32 numerics.
"""
from __future__ import annotations

import json
import platform
from typing import Any, Iterable

import numpy as np

from resnet_rosetta.common import host
from resnet_rosetta.common.tolerance import FP64_BOUND, KINK_MARGIN, STRICT, floor_allowance
from .engine import ORACLE, Comparison, Row, tolerance_kind

SCHEMA = "resnet-rosetta-parity/2"


def environment() -> dict[str, Any]:
    info = host.cpu_info()
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": info["cpu_model"],
            "cpu_count": info["cpu_count"], "numpy": np.__version__}


def _row(r: Row) -> dict[str, Any]:
    return {"quantity": r.quantity, "max_abs": r.max_abs, "max_rel": r.max_rel,
            "tolerance": r.tolerance, "passed": r.passed, "floor": r.floor, "floor_limited": r.floor_limited}


def to_json(comparisons: list[Comparison], settings: dict[str, Any], numerics: dict[str, Any],
            errors: dict[str, str], conventions: dict[str, Any],
            unsupported: dict[str, str] | None = None, branches: dict[str, Any] | None = None) -> dict[str, Any]:
    checks = [{"arch": c.arch, "check": c.check, "left": c.left, "right": c.right, "passed": c.passed,
               "status": c.status, "note": c.note,
               "worst": _row(c.worst), "first_divergence": _row(c.first_divergence) if c.first_divergence else None,
               "rows": [_row(r) for r in c.rows]} for c in comparisons]
    return {"schema": SCHEMA, "environment": environment(), "settings": settings, "numerics": numerics,
            "errors": errors, "unsupported": unsupported or {}, "running_var_conventions": conventions,
            "relu_branches": branches or {}, "checks": checks,
            "passed": passed(comparisons, errors)}


def passed(comparisons: Iterable[Comparison], errors: dict[str, str]) -> bool:
    return not errors and all(c.passed for c in comparisons)


def _pair(c: Comparison) -> str:
    return f"{c.left} vs {c.right}"


def _grouped(comparisons: list[Comparison]) -> dict[tuple[str, str], list[Comparison]]:
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((c.arch, c.check), []).append(c)
    return groups


def _why(row: Row | dict[str, Any], check: str, right: str) -> str:
    """Why a failing quantity of `check` (compared with `right`) is excused, or why its check cannot
    resolve it: the engine's allowance for it is none (its floors pass CAP; between two frameworks
    the policy doubles the allowance of most kinds, so a floor half as high already does)."""
    r = _row(row) if isinstance(row, Row) else row
    if r["floor"] is None:
        return ""
    if r["floor_limited"]:
        return f", conditioning floor {r['floor']:.1e}"
    kind = tolerance_kind(check, r["quantity"].split(" (")[0])
    if floor_allowance(r["floor"], kind, pairwise=right != ORACLE) == 0.0:
        return f", conditioning floor {r['floor']:.1e}: too ill-conditioned to check at this dtype"
    return ""


def _unexcused(c: Comparison) -> str:
    """For a failure whose first divergence is excused: where it really fails."""
    r = c.first_unexcused
    return ("" if r is None or r is c.first_divergence else
            f"; fails at {r.quantity} ({r.max_rel:.1e}{_why(r, c.check, c.right)})")


def proof_line(doc: dict[str, Any]) -> str:
    """An fp64 run's verdict in one line: proven identical (worst error), failed, or incomplete."""
    rows = [r for c in doc["checks"] for r in c["rows"]]
    worst = max((r["max_rel"] for r in rows), default=float("nan"))
    s = doc["settings"]
    sizes = "/".join(str(n) for n in dict.fromkeys(s["size"]))
    grad_sizes = "/".join(str(n) for n in dict.fromkeys(s["grad_size"]))
    training = set(s["checks"]) & {"grad", "step", "steps"}
    sizes += f" px ({grad_sizes} px in the training checks)" if training and grad_sizes != sizes else " px"
    widths = dict.fromkeys(f"{w[0]}-{w[-1]}" for w in s.get("widths", []))
    narrowed = f"at 1/{s['width_divisor']} of the preset widths, " if s.get("width_divisor", 1) > 1 else ""
    what = (f"{', '.join(s['archs'])} {narrowed}{'/'.join(widths)} channels: {', '.join(s['checks'])}, {sizes}, "
            f"batch {s['batch']}" + (_steps_text(s['sgd']['steps']) if "steps" in s["checks"] else ""))
    names = sorted({c["left"] for c in doc["checks"]} - {"oracle"})
    missing = {**doc["errors"], **doc["unsupported"]}
    if not doc["passed"]:
        bad = [c for c in doc["checks"] if not c["passed"]]
        fd = bad[0]["first_divergence"] if bad else None
        first = (f"; first: {bad[0]['arch']} {bad[0]['check']} {bad[0]['left']} vs {bad[0]['right']} "
                 f"{fd['quantity']} {fd['max_rel']:.1e}" if fd else "")
        return (f"ports NOT proven identical in float64: {len(bad)} of {len(doc['checks'])} comparisons beyond "
                f"{FP64_BOUND:g}{first}" + "".join(f"; {n} did not run" for n in doc["errors"]) + f" ({what})")
    text = (f"ports proven identical in float64 (worst {worst:.1e}, bound {FP64_BOUND:g}): "
            f"{', '.join(names) or 'none'} vs the float64 oracle and each other ({what})")
    if missing:
        text += "; not proven: " + "; ".join(f"{n} ({why})" for n, why in missing.items())
    return text


def _steps_text(k: int) -> str:
    return ", 1 SGD step" if k == 1 else f", {k} free-running SGD steps"


def proof_failures(doc: dict[str, Any]) -> str:
    """The failing comparisons of an fp64 proof run, as terminal lines (empty when all passed)."""
    return "\n".join(f"float64 {c['arch']} · {c['check']}: {c['left']} vs {c['right']} FAIL (first divergence: "
                     f"{c['first_divergence']['quantity']} {c['first_divergence']['max_rel']:.2e})"
                     for c in doc["checks"] if not c["passed"] and c["first_divergence"])


def branch_summary(arch: str, per_framework: dict[str, Any], dtype: str = "fp32") -> str:
    """One line: where each framework's forward took the other side of a ReLU kink."""
    parts = []
    for fw, m in per_framework.items():
        text = f"{fw} {m['flips']}"
        if m["flips"]:
            sites = m["sites"]
            text += f" (widest {m['widest']:.0e}; {', '.join(sites[:3])}{', ...' if len(sites) > 3 else ''})"
        if m["conflicts"]:
            text += f", {m['conflicts']} CONFLICTING farther from zero (not followed)"
        parts.append(text)
    if dtype in STRICT:
        return (f"{arch} · ReLU inputs where a float64 port took the other branch than the oracle (counted, "
                f"never followed; expected 0): " + "; ".join(parts))
    return (f"{arch} · ReLU inputs within {KINK_MARGIN:g} of zero where {dtype} took the other branch "
            f"(the oracle's backward followed each framework there): " + "; ".join(parts))


def terminal(comparisons: list[Comparison], errors: dict[str, str], conventions: dict[str, Any],
             unsupported: dict[str, str] | None = None, branches: dict[str, Any] | None = None,
             dtype: str = "fp32") -> str:
    """Per arch and check: one line per pair, the relative error per quantity (or the worst one)."""
    lines: list[str] = []
    for (arch, check), comps in _grouped(comparisons).items():
        quantities = [r.quantity for r in comps[0].rows]
        show = quantities if len(quantities) <= 8 else None
        lines.append(f"\n{arch} · {check} (max relative error, to max |reference|)")
        width = max(18, *(len(_pair(c)) for c in comps))  # `user-flax vs user-torch` and the like: one column
        header = f"  {'pair':<{width}}" + ("".join(f"{q[:10]:>11}" for q in show) if show else
                                      f"{'worst quantity (of ' + str(len(quantities)) + ')':>40}{'max rel':>11}")
        lines.append(header + f"{'abs@worst':>11}{'tol':>9}  result")
        for c in comps:
            cells = ("".join(f"{r.max_rel:>11.2e}" for r in c.rows) if show else
                     f"{c.worst.quantity[-40:]:>40}{c.worst.max_rel:>11.2e}")
            fd = c.first_divergence
            verdict = ("PASS" if fd is None else
                       f"{c.status.upper()} (first divergence: {fd.quantity}"
                       + _why(fd, c.check, c.right) + _unexcused(c) + ")")
            lines.append(f"  {_pair(c):<{width}}{cells}{c.worst.max_abs:>11.2e}{c.worst.tolerance:>9.0e}  {verdict}")
    for arch, per_framework in (branches or {}).items():
        if per_framework:
            lines.append("\n" + branch_summary(arch, per_framework, dtype))
    for arch, conv in conventions.items():
        factors = ", ".join(f"{fw} {f:.5f}" for fw, f in conv["factors"].items())
        lines.append(f"\n{arch} · running_var feed on {conv['layer']} (n = {conv['n']}): {factors}; "
                     f"unbiased would be {conv['unbiased_factor']:.5f}, biased 1.00000")
    for name, err in errors.items():
        lines.append(f"\n{name}: did not run: {err}")
    for name, why in (unsupported or {}).items():
        lines.append(f"\n{name}: not run ({_unsupported_means(dtype)}): {why}")
    return "\n".join(lines)


def where(doc: dict[str, Any]) -> str:
    """Where the frameworks computed: "Computed on the CPU ..." or "... on the GPU (TF32 off ...)"."""
    if doc["settings"].get("device", "cpu") == "gpu":
        return ("Computed on the GPU by every framework that sees one, TF32 off (NVIDIA_TF32_OVERRIDE=0 and each "
                "framework's own switch) and deterministic kernels; the oracle in float64 on the CPU.")
    return "Computed on the CPU (every framework and the float64 oracle)."


def markdown(doc: dict[str, Any]) -> str:
    """One table per arch x check (pair x metric), then first divergences, the fp64 proof (its own
    tables one heading level down) and the settings."""
    out = ["# Parity report", "",
           f"Overall: **{'PASS' if doc['passed'] else 'FAIL'}**. Errors are relative to the reference "
           "tensor's max magnitude; the oracle is a float64 NumPy implementation. The conditioning floor "
           "is how far the oracle's own result moves when every weight and input moves by one unit "
           "round-off of the run's dtype: no implementation in that dtype can be expected to beat it.", "",
           where(doc), ""]
    out += _markdown_body(doc, "##")
    if "float64" in doc:
        out += ["## float64 proof", ""] + _markdown_body(doc["float64"], "###")
    out += ["## Settings", "", "```json", json.dumps({"settings": doc["settings"], "numerics": doc["numerics"],
                                                      "environment": doc["environment"]}, indent=2), "```", ""]
    if "float64" in doc:
        out += ["Settings of the float64 proof:", "", "```json", json.dumps(doc["float64"]["settings"], indent=2),
                "```", ""]
    return "\n".join(out)


def _markdown_body(doc: dict[str, Any], heading: str) -> list[str]:
    """The tables, first divergences and notes of one run's document."""
    out = [f"**{doc['proof']}.**", ""] if "proof" in doc else []
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in doc["checks"]:
        by_group.setdefault((c["arch"], c["check"]), []).append(c)
    for (arch, check), comps in by_group.items():
        out += [f"{heading} {arch} · {check}{' (float64)' if doc['settings']['dtype'] in STRICT else ''}", "",
                "| pair | worst quantity | max abs | max rel | tolerance | conditioning floor | result |",
                "|---|---|---|---|---|---|---|"]
        for c in comps:
            w = c["worst"]
            out.append(f"| {c['left']} vs {c['right']} | {w['quantity']} | {w['max_abs']:.2e} | {w['max_rel']:.2e} "
                       f"| {w['tolerance']:.0e} | {'-' if w['floor'] is None else format(w['floor'], '.1e')} "
                       f"| {c['status']} |")
        out.append("")
        for c in comps:
            fd = c["first_divergence"]
            if fd:
                history = ", ".join(f"{r['quantity']} {r['max_rel']:.1e}" for r in c["rows"][:c["rows"].index(fd) + 1])
                why = _why(fd, c["check"], c["right"])
                out += [f"First divergence, {c['left']} vs {c['right']}: **{fd['quantity']}** "
                        f"({fd['max_rel']:.2e} > {fd['tolerance']:.0e}){why}; errors up to it: {history}.", ""]
    for arch, per_framework in doc.get("relu_branches", {}).items():
        if per_framework:
            out += [branch_summary(arch, per_framework, doc["settings"]["dtype"]) + ".", ""]
    for arch, conv in doc["running_var_conventions"].items():
        out += [f"Running-variance feed, {arch}, layer `{conv['layer']}` (n = {conv['n']} samples per channel): "
                + ", ".join(f"{fw} x{f:.5f}" for fw, f in conv["factors"].items())
                + f" of the biased batch variance (unbiased = x{conv['unbiased_factor']:.5f}).", ""]
    for fw, err in doc["errors"].items():
        out += [f"**{fw} did not run:** {err}", ""]
    for fw, why in doc.get("unsupported", {}).items():
        out += [f"**{fw} not run ({_unsupported_means(doc['settings']['dtype'])}):** {why}", ""]
    return out


def _unsupported_means(dtype: str) -> str:
    return ("unsupported in float64: the proof is incomplete" if dtype in STRICT
            else "unsupported here, not a failure")
