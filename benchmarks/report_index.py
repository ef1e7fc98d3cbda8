"""index.md of `resnet-rosetta report`: summary, parity, benchmark, plots, environment, files."""
from __future__ import annotations

import re
from typing import Sequence

from . import report_md
from .results import FLOOR_FACTOR, RATIO_BOUND, SPREAD_BOUND, model_records, ok, within_noise

PEAK_BOUND = 0.5
# The bf16 bound (fraction of the bf16 matmul peak) is judged on this workload, on CPUs with bf16
# instructions (AVX512-BF16 or AMX; common/host.py): elsewhere bf16 is converted, not computed.
BF16_BOUND_CELL = {"arch": "resnet50", "mode": "infer", "batch": 16}


def demote_headings(markdown: str, by: int = 1) -> str:
    """Shift every ATX heading down `by` levels (outside fenced code) so embedded reports nest."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,5} ", line):
            line = "#" * by + line
        out.append(line)
    return "\n".join(out) + "\n"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def summary_lines(records: list[dict], derived: dict, parity: dict) -> list[str]:
    lines = []
    devices = sorted({r["cell"]["device"] for r in records})
    names = sorted({r["env"]["device_name"] for r in records if r.get("env", {}).get("device_name", "cpu") != "cpu"})
    if devices:
        lines.append(f"**Benchmarks on:** {', '.join(devices)}" + (f" ({', '.join(names)})" if names else "") + ".")
    # parity
    if parity["status"] == "skipped":
        lines.append("**Parity:** not run (--skip-parity).")
    elif parity.get("doc") is not None:
        checks = parity["doc"].get("checks", [])
        counts: dict[str, int] = {}
        for c in checks:
            status = c.get("status") or ("pass" if c.get("passed") else "FAIL")
            counts[status] = counts.get(status, 0) + 1
        verdict = "PASS" if parity["doc"].get("passed") else "**FAIL**"
        others = "".join(f", {n} {status}" for status, n in sorted(counts.items()) if status != "pass")
        excused = " (conditioning-limited: explained by fp32 itself, see parity.md)" if any(
            status.endswith("-limited") for status in counts) else ""
        where = parity["doc"].get("settings", {}).get("device", "cpu")
        lines.append(f"**Parity (on the {where.upper()}):** {verdict}: {counts.get('pass', 0)} of {len(checks)} "
                     f"comparisons within tolerance{others}{excused}.")
        proof = (parity["doc"].get("float64") or parity["doc"]).get("proof")
        if proof:  # the fp64 run's one-line verdict (parity/report.py proof_line)
            lines.append(f"**Float64:** {proof}.")
    else:
        lines.append(f"**Parity:** {parity['status']}: {parity.get('message', '')}")
    # ours vs reference
    rs = derived["ratios"]
    measured = [r for r in rs if r["ratio"] is not None]
    if rs:
        low = [r for r in measured if not r["passed"]]
        if measured:
            text = (f"**Ours vs reference:** {len(measured) - len(low)} of {len(measured)} measured pairs at or "
                    f"above {RATIO_BOUND} (ratios {min(r['ratio'] for r in measured):.3f} to "
                    f"{max(r['ratio'] for r in measured):.3f})")
        else:
            text = "**Ours vs reference:** no pair measured"
        if len(measured) < len(rs):
            text += f"; {len(rs) - len(measured)} of {len(rs)} pairs not measured"
        if low:
            text += "; below: " + ", ".join(
                f"{r['cell']['arch']} {r['cell']['framework']} {r['cell']['mode']} {r['ratio']:.3f}"
                f"{' (within noise)' if within_noise(r) else ''}" for r in low)
        lines.append(text + ".")
    # peak fraction: the best resnet50 fp32 inference cell, whatever its batch (the preset's, CPU or GPU)
    cand = [r for r in model_records(records) if ok(r) and r["cell"]["arch"] == "resnet50" and r["cell"]["mode"] == "infer"
            and r["cell"]["precision"] == "fp32" and r["metrics"].get("peak_fraction")]
    if cand:
        top = max(cand, key=lambda r: r["metrics"]["peak_fraction"])
        c, m = top["cell"], top["metrics"]
        frac = m["peak_fraction"]
        lines.append(f"**resnet50 fp32 inference, batch {c['batch']}:** best {m['img_s_median']:.3g} img/s = "
                     f"{m['gflop_s']:.3g} GFLOP/s = {_pct(frac)} of the measured {m.get('peak_mode', 'fp32')} matmul "
                     f"peak ({c['framework']} {c['impl']} {c['exec']}, {c['layout']}); bound {PEAK_BOUND:.0%}: "
                     f"{'met' if frac >= PEAK_BOUND else 'not met'}.")
    lines += _bf16_lines(records)
    good = [r for r in model_records(records) if ok(r)]
    if good:
        limit = derived.get("steady_limit", SPREAD_BOUND)
        noisy = [r for r in good if r["metrics"].get("steady") is False]
        steal = sorted(r["metrics"]["steal_fraction"] for r in good if r["metrics"].get("steal_fraction") is not None)
        stolen = (f"; CPU steal (time the hypervisor gave to other guests) during the cells: median "
                  f"{_pct(steal[len(steal) // 2])}, max {_pct(steal[-1])}" if steal else "")
        floor = derived.get("host_noise") or {}
        host = (f"; the host's own floor, a fixed {next(iter(floor.values()))['n']}^3 fp32 matmul loop timed "
                "the same way in the probe cells: IQR/median "
                + ", ".join(f"{_pct(v['spread'])} ({fw})" for fw, v in floor.items()) if floor else "")
        lines.append(f"**Repeatability:** {len(good) - len(noisy)} of {len(good)} cells steady (IQR/median <= "
                     f"{_pct(limit)} = max({SPREAD_BOUND:.0%}, {FLOOR_FACTOR} x the host's floor))"
                     + (f"; noisier: {len(noisy)} (marked in the spread column)" if noisy else "")
                     + stolen + host + ".")
    scaled = [r for r in derived.get("scaling", []) if r["efficiency"] is not None]
    if scaled:
        lines.append("**Scaling (data parallel):** " + "; ".join(
            f"{r['cell']['arch']} {r['cell']['framework']} x{r['devices']}: efficiency {r['efficiency']:.2f} "
            f"({r['img_s']:.3g} vs {r['one_device_img_s']:.3g} img/s on one device)" for r in scaled)
            + " (see Scaling below).")
    from .pipeline import status_line
    lines.append(f"**Cells:** {status_line(records)}.")
    return lines


def index_markdown(*, meta: dict, plan_measures: Sequence[str], plan_skips: Sequence[str], records: list[dict],
                   derived: dict, parity: dict, list_text: str | None, files: Sequence[str]) -> str:
    out = "# resnet-rosetta report\n\n"
    if meta.get("interrupted"):
        out += ("> **Interrupted (Ctrl-C):** this report holds what was finished before the interrupt; "
                "the rest is listed as not run.\n\n")
    out += report_md.load_note(records)
    out += "## Summary\n\n" + "".join(f"- {line}\n" for line in summary_lines(records, derived, parity)) + "\n"
    out += "### What this report measured\n\n" + "".join(f"- {m}\n" for m in plan_measures) + "\n"
    out += "### What it left out\n\n" + "".join(f"- {s}\n" for s in plan_skips)
    skipped = [r for r in records if r["status"] in ("skipped", "not_run", "interrupted")]
    if skipped:
        out += f"- {len(skipped)} planned cells not run (budget, interrupt or an earlier out-of-memory): see below\n"
    out += "\n" + report_md.run_section(meta)
    out += "## Presets\n\n"
    out += ("```\n" + list_text.rstrip() + "\n```\n\n") if list_text else "`resnet-rosetta list` did not run.\n\n"
    out += "## Parity\n\n"
    if parity.get("markdown"):
        out += demote_headings(parity["markdown"], 2) + "\n"
    elif parity.get("stdout"):
        out += (f"Parity {parity['status']}: {parity.get('message', '')}. Its terminal output:\n\n```\n"
                + parity["stdout"].rstrip()[-6000:] + "\n```\n\n")
    else:
        out += f"Parity {parity['status']}: {parity.get('message', '')}\n\n"
    out += "## Benchmark\n\n"
    out += (report_md.ratio_section(derived["ratios"], 3) + report_md.scaling_section(derived.get("scaling", []), 3)
            + report_md.best_section(derived["best"], 3)
            + report_md.results_tables(records, 3)
            + report_md.peaks_section(derived["peaks"], 3, derived.get("host_noise"))
            + report_md.plots_section(derived.get("plots", []), 3) + report_md.failures_section(records, 3))
    out += report_md.environment_section(records, meta, 2)
    out += "## Files\n\n" + "".join(f"- [{f}]({f})\n" for f in files) + "\n"
    return out


def _bf16_lines(records: list[dict]) -> list[str]:
    """The bf16 summary: cells measured, the best one against the bf16 matmul peak, and the bound on
    resnet50 inference at batch 16 (met, not met, not measured, or not applicable without bf16 hardware)."""
    bf = [r for r in model_records(records) if r["cell"]["precision"] == "bf16"]
    if not bf:
        return []
    good = [r for r in bf if ok(r)]
    hw = next((r["env"].get("bf16_hw") for r in records if r.get("env")), None)
    text = f"**bf16:** {len(good)} of {len(bf)} cells measured"
    if good:
        top = max(good, key=lambda r: r["metrics"].get("peak_fraction") or 0)
        text += f"; best {_who(top)}: {_pct(top['metrics'].get('peak_fraction'))} of the bf16 matmul peak"
    bound = f"bound {PEAK_BOUND:.0%} on resnet50 inference at batch 16"
    judged = [r for r in good if all(r["cell"][k] == v for k, v in BF16_BOUND_CELL.items())
              and r["cell"]["device"] == "cpu" and r["metrics"].get("peak_fraction")]
    if hw is False:
        text += f" (this CPU has no bf16 instructions: bf16 is emulated or converted to fp32; {bound}: not applicable)"
    elif judged:
        best = max(judged, key=lambda r: r["metrics"]["peak_fraction"])
        frac = best["metrics"]["peak_fraction"]
        text += f"; {bound}: {'met' if frac >= PEAK_BOUND else 'not met'} ({_pct(frac)}, {_who(best)})"
        if frac > 1:
            text += " (over 100%: the matmul probe fell short of this CPU's bf16 peak, or the host's load changed)"
    elif any(r["cell"]["device"] == "cpu" for r in bf):
        text += f"; {bound}: not measured (no such cell ran)"
    return [text + "."]


def _who(r: dict) -> str:
    c = r["cell"]
    return (f"{c['framework']} {c['arch']} {c['mode']} b{c['batch']} {c['exec']}"
            + (f" {c['layout']}" if c.get("layout") and c["layout"] != "NCHW" else ""))
