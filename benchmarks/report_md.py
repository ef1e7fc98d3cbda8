"""Markdown for people: the benchmark tables, the ours/reference ratios, peaks, failures, environment.

Every function returns a section (a string starting with a heading at `level`), so `bench`'s
report.md and `report`'s index.md are assembled from the same pieces.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

from resnet_rosetta.common.workload import MATH_MODES
from .config import DEFAULT_EXEC, EXEC_MEANING, REFERENCE_NAME
from .results import (RATIO_BOUND, framework_order, model_records, ok, paired_reference_rows,
                      reference_pair, within_noise)

NOT_ATTEMPTED = ("skipped", "not_run")
MODE_MEANING = {"fp32": "fp32 (strict, TF32 off)", "tf32": "tf32 (fp32 storage, TF32 products)", "bf16": "bf16",
                "fp16": "fp16"}
IMPL_NAME = {"torch": "torchvision", "paddle": "paddle.vision", "flax": "plain Flax"}


def _h(level: int, text: str) -> str:
    return f"{'#' * level} {text}\n\n"


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"
    return str(v)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _mib(v) -> str:
    return "-" if not v else f"{v / 2**20:,.0f} MiB"


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n"


def model_name(cell: dict) -> str:
    return "ours" if cell["impl"] == "ours" else IMPL_NAME.get(cell["framework"], "reference")


def gpu_text(gpu: dict) -> str:
    """One line of GPU facts (benchmarks/gpu_facts.py), as the first GPU row recorded them."""
    if not gpu.get("source"):
        return f"facts not available ({gpu.get('error')})"
    return (f"{gpu.get('name')}, driver {gpu.get('driver')}, SM clock {gpu.get('sm_clock_mhz')} of "
            f"{gpu.get('sm_clock_max_mhz')} MHz, power limit {gpu.get('power_limit_w')} W, "
            f"{gpu.get('other_processes')} other process(es) on the device (from {gpu['source']})")


def tf32_text(env: dict) -> str:
    """The TF32 state a GPU row read back from its framework (and the environment override)."""
    state = env.get("tf32")
    if not isinstance(state, dict):
        return state or "n/a (CPU)"
    override = " (NVIDIA_TF32_OVERRIDE=0: off whatever the switches say)" if env.get("tf32_override") == "0" else ""
    return f"read back: {state.get('read')}{override}"


def peaks_section(peaks: dict, level: int = 2, host_noise: dict | None = None) -> str:
    out = _h(level, "Matmul peak of this machine (measured in this run)")
    if not peaks:
        return out + "Not measured (probe skipped or failed): no fraction-of-peak figures.\n\n"
    rows = []
    for mode in MATH_MODES:
        p = peaks.get(mode)
        if not p:
            continue
        per = ", ".join(f"{fw} {_num(g)}" for fw, g in sorted(p["per_framework"].items()))
        rows.append((MODE_MEANING[mode], _num(p["gflop_s"]), p["by"] or "-", per))
    out += table(("math mode", "peak GFLOP/s", "best by", "each framework's matmul (GFLOP/s)"), rows)
    out += ("Square matmuls, n grown until one call takes 0.3 s (CPU; on a GPU up to 16384, one "
            "synchronisation per batch of calls), best of 3 rounds, same threads and cores as the cells, each "
            "math mode set explicitly in each framework. Fractions of peak below divide each cell by the best "
            "framework's figure for the math mode the cell ran in (its `math_mode`: tf32 for fp32 cells on a GPU "
            "whose TF32 switches, read back, were on).\n\n")
    if host_noise:
        out += table(("framework", "matmul n", "repeats x steps", "GFLOP/s (median)", "spread (IQR/median)"),
                     [(fw, v["n"], f"{v['repeats']} x {v['iters']}", _num(v["gflop_s"]), f"{v['spread']:.1%}")
                      for fw, v in sorted(host_noise.items())])
        out += ("The host's own noise: a fixed fp32 matmul loop timed exactly like a model cell (warm-up, then "
                "the repeats of about a second each): a cell's spread near this one is the host's, not its "
                "framework's.\n\n")
    return out


def ratio_section(ratios: list[dict], level: int = 2) -> str:
    out = _h(level, f"Ours vs the framework's own reference model (bound: ratio >= {RATIO_BOUND})")
    if not ratios:
        return out + "No reference pairs in this sweep.\n\n"
    out += ("Measured in our model's cell, after our model's own figures: the reference model is built in the "
            "same fresh process and warmed up, then both run in rounds of one repeat each, the order alternating "
            "ABBA (ours-reference, reference-ours, ...), both repeats of a round the same number of steps. "
            "Ratio = median over the rounds of that round's ours/reference throughput, so a drift of the machine "
            "falls on both models alike; its IQR is the quartiles of the round ratios. The img/s here are the "
            "medians inside the pair.\n\n")
    rows = []
    for r in sorted(ratios, key=lambda r: (r["cell"]["arch"], r["cell"]["mode"], framework_order(r["cell"]["framework"]),
                                           r["cell"]["batch"], r["cell"]["precision"], r["cell"]["exec"])):
        c = r["cell"]
        if r["ratio"] is None:
            verdict = f"not measured ({r['status']}{': ' + r['message'] if r['message'] else ''})"
        else:
            verdict = "pass" if r["passed"] else "**below bound**" + (" (within noise)" if within_noise(r) else "")
        iqr = "-" if r["ratio"] is None else f"{_num(r['ratio_q25'])}-{_num(r['ratio_q75'])}"
        rows.append((c["arch"], c["framework"], REFERENCE_NAME[c["framework"]], c["mode"], str(c["batch"]),
                     c["precision"], c["exec"], c["device"], _num(r["ours_img_s"]), _num(r["reference_img_s"]),
                     _num(r["ratio"]), iqr, _num(r["rounds"]), _pct(r["steal_fraction"]), verdict))
    out += table(("arch", "framework", "reference", "mode", "batch", "precision", "exec", "device", "ours img/s",
                  "reference img/s", "ratio", "ratio IQR", "rounds", "steal", "verdict"), rows)
    return out


def batch_text(cell: dict) -> str:
    """"16", or "16 x 2 devices" for a data-parallel cell (batch per replica x replicas)."""
    n = cell.get("devices", 1)
    return str(cell["batch"]) + (f" x {n} devices" if n > 1 else "")


SCALING_TEXT = ("N replicas, each training its own `batch` (global batch N x batch) on the framework's own engine "
                "(torch DDP, paddle.DataParallel: one process per replica; JAX: jit over a Mesh of N devices), "
                "timed in the same cell as one device with the same per-replica batch, the two interleaved ABBA "
                "round by round. Efficiency = img/s(N) / (N x img/s(1)), the median over the rounds (IQR: their "
                "quartiles); speedup = img/s(N) / img/s(1). On a CPU the N replicas share the cores the one device "
                "had to itself (its threads split evenly between them), so 1/N means no gain: above it, the "
                "replicas use the cores better than one process's threads; below it, the engine's "
                "synchronisation costs more than it gains.\n\n")


def scaling_section(rows: list[dict], level: int = 2) -> str:
    """The data-parallel cells: img/s on N devices and on one, efficiency and speedup ('' without any)."""
    if not rows:
        return ""
    out = _h(level, "Scaling (data parallel)") + SCALING_TEXT
    table_rows = []
    for r in sorted(rows, key=lambda r: (r["cell"]["arch"], framework_order(r["cell"]["framework"]), r["devices"])):
        c = r["cell"]
        threads = ("-" if r["one_device_threads"] is None else
                   f"{r['threads'] or str(r['threads_per_replica']) + ' per replica'}; one device "
                   f"{r['one_device_threads']}")
        iqr = "-" if r["efficiency"] is None else f"{_num(r['efficiency_q25'])}-{_num(r['efficiency_q75'])}"
        table_rows.append((c["arch"], c["framework"], c["mode"], c["precision"], c["exec"], c["device"],
                           str(r["devices"]), str(c["batch"]), str(r["global_batch"]), threads,
                           _num(r["one_device_img_s"]), _num(r["img_s"]), _num(r["speedup"]), _num(r["efficiency"]),
                           iqr, r["batch_norm"] or "-",
                           "ok" if r["status"] == "ok" else f"{r['status']}: {r['message']}"))
    return out + table(("arch", "framework", "mode", "precision", "exec", "device", "devices", "batch per replica",
                        "global batch", "threads", "img/s (1 device)", "img/s (N devices)", "speedup",
                        "efficiency", "efficiency IQR", "batch norm", "status"), table_rows)


def scaling_terminal(rows: list[dict]) -> str:
    """One line per data-parallel cell for the terminal ('' without any)."""
    return "".join(
        f"scaling: {r['cell']['arch']} {r['cell']['framework']} x{r['devices']} devices (global batch "
        f"{r['global_batch']}): " + (f"{_num(r['img_s'])} img/s vs {_num(r['one_device_img_s'])} on one device, "
                                     f"efficiency {_num(r['efficiency'])}" if r["status"] == "ok" else r["status"])
        + "\n" for r in rows)


def results_tables(records: list[dict], level: int = 2) -> str:
    """One table per model x mode; the fastest row of each (batch, precision) is starred."""
    groups: dict = defaultdict(list)
    for r in model_records(records) + paired_reference_rows(records):
        if r["status"] not in NOT_ATTEMPTED:  # those are listed under "Cells not measured"
            groups[(r["cell"]["arch"], r["cell"]["size"], r["cell"]["mode"])].append(r)
    out = _h(level, "Throughput")
    if not groups:
        return out + "No model cells.\n\n"
    out += ("img/s and ms/step are medians over the repeats, IQR their inter-quartile range; spread = IQR / median. "
            "First call = the first step on its own (tracing, compilation, autotuning included), never in the "
            "medians. GFLOP/s counts 2 x MACs per image for inference and 3 x that for training. "
            "Steal = share of the machine's CPU time the hypervisor gave to other guests during the cell's "
            "warm-up and repeats (from /proc/stat: one source of noise on a shared VM; contention for the host's "
            "caches and memory bandwidth does not show there). "
            "Reference-model rows come from the ratio's pairs (*paired*: measured in our model's process, "
            "interleaved with it, so no memory figure of their own). ★ = fastest row for its batch size and precision.\n\n")
    header = ("framework", "model", "exec", "precision", "layout", "device", "batch", "img/s", "IQR", "spread", "steal",
              "ms/step", "first call s", "peak memory", "GFLOP/s", "% of peak", "status")
    for (arch, size, mode), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "infer")):
        recs = sorted(recs, key=lambda r: (r["cell"]["batch"], r["cell"]["precision"],
                                           framework_order(r["cell"]["framework"]), r["cell"]["exec"],
                                           r["cell"]["impl"] != "ours", r["cell"]["layout"]))
        fastest = {}
        for r in recs:
            if ok(r):
                k = (r["cell"]["batch"], r["cell"]["precision"])
                if k not in fastest or r["metrics"]["img_s_median"] > fastest[k]["metrics"]["img_s_median"]:
                    fastest[k] = r
        rows = []
        for r in recs:
            c, m = r["cell"], r.get("metrics", {})
            star = " ★" if fastest.get((c["batch"], c["precision"])) is r else ""
            if ok(r):
                spread = m.get("spread")
                sp = _pct(spread) + (" (noisy)" if m.get("steady") is False else "")
                name = model_name(c) + (" (paired)" if r.get("paired") else "")
                rows.append((f"**{c['framework']}**{star}" if star else c["framework"], name, c["exec"],
                             c["precision"], c["layout"], c["device"], batch_text(c), _num(m["img_s_median"]),
                             f"{_num(m['img_s_q25'])}-{_num(m['img_s_q75'])}", sp, _pct(m.get("steal_fraction")),
                             _num(m["ms_step_median"], 4),
                             _num(m["first_call_s"]), _mib(m.get("peak_memory_bytes")), _num(m["gflop_s"]),
                             _pct(m.get("peak_fraction")), "ok"))
            else:
                rows.append((c["framework"], model_name(c), c["exec"], c["precision"], c["layout"], c["device"],
                             batch_text(c),
                             "-", "-", "-", "-", "-", "-", "-", "-", "-", f"{r['status']}"))
        out += _h(level + 1, f"{arch} {mode} ({size}x{size})") + table(header, rows)
    return out


def failures_section(records: list[dict], level: int = 2) -> str:
    """Every cell that did not complete, and every reference model that failed beside a measured one."""
    bad = [(r, model_name(r["cell"]) if r["cell"].get("arch") else "-", r["status"], r.get("message", ""))
           for r in records if r.get("status") != "ok"]
    for r in records:
        pair = reference_pair(r)
        if pair and not ok(pair):
            bad.append((r, IMPL_NAME.get(r["cell"]["framework"], "reference") + " (beside ours)", pair["status"],
                        pair.get("message", "")))
    out = _h(level, "Cells not measured")
    if not bad:
        return out + "None: every cell completed.\n\n"
    rows = [(r["cell"].get("arch") or "(peak probe)", r["cell"]["framework"], name, r["cell"].get("mode", "-"),
             str(r["cell"].get("batch", "-")), r["cell"].get("precision", "-"), r["cell"].get("exec", "-"),
             r["cell"]["device"], status, message, r.get("log", "-")) for r, name, status, message in bad]
    return out + table(("arch", "framework", "model", "mode", "batch", "precision", "exec", "device", "status",
                        "message", "log"), rows)


def best_section(best: dict, level: int = 2) -> str:
    out = _h(level, "Best configuration per framework (our implementation)")
    if not best:
        return out + "No successful cells.\n\n"
    rows = []
    for (arch, mode), per in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][1] != "infer")):
        top = max(per.values(), key=lambda r: r["metrics"]["img_s_median"])
        for fw in sorted(per, key=framework_order):
            r = per[fw]
            c, m = r["cell"], r["metrics"]
            rows.append((arch, mode, f"**{fw}** ★" if r is top else fw,
                         f"{c['exec']}, {c['precision']}, {c['layout']}, batch {batch_text(c)}", c["device"],
                         _num(m["img_s_median"]), _num(m["gflop_s"]), _pct(m.get("peak_fraction"))))
    return out + table(("arch", "mode", "framework", "configuration", "device", "img/s", "GFLOP/s", "% of peak"),
                       rows)


def environment_section(records: list[dict], meta: dict, level: int = 2) -> str:
    out = _h(level, "Environment")
    env = next((r["env"] for r in records if r.get("env")), {})
    if env:
        rows = [("CPU", env.get("cpu_model", "?")), ("SIMD flags", " ".join(env.get("cpu_flags", [])) or "-"),
                ("bf16 in hardware", "yes" if env.get("bf16_hw") else "no (bf16 is emulated / converted)"),
                ("logical CPUs", str(env.get("cpu_count"))), ("memory", _mib(env.get("memory_total_bytes"))),
                ("OS", env.get("os", "?")), ("Python", env.get("python", "?")),
                ("threads per cell", f"{env.get('threads')} (cores {env.get('pinned_cpus')})"),
                ("MKL_DEBUG_CPU_TYPE", env.get("MKL_DEBUG_CPU_TYPE") or "unset")]
        gpu = next((r["env"]["gpu"] for r in records if (r.get("env") or {}).get("gpu")), None)
        if gpu:
            rows.append(("GPU", gpu_text(gpu)))
        out += table(("", ""), rows)
    fw_rows = []
    seen = set()
    for r in records:
        c, e = r["cell"], r.get("env", {})
        if c["framework"] in seen or "framework_version" not in e:
            continue
        seen.add(c["framework"])
        extra = {k: v for k, v in e.items() if k.endswith("_version") and k != "framework_version"}
        extra.update({f"{k.upper()}_version": e[k] for k in ("cuda", "cudnn") if e.get(k)})  # GPU builds
        gpu = e.get("device_name", "cpu")
        tf32 = tf32_text(e)
        fw_rows.append((c["framework"], e["framework_version"], ", ".join(f"{k[:-8]} {v}" for k, v in extra.items()),
                        gpu, tf32))
    if fw_rows:
        out += table(("framework", "version", "with", "device", "TF32"), sorted(fw_rows, key=lambda r: framework_order(r[0])))
    out += _h(level + 1, "How each framework is run")
    rows = [(fw, ex, EXEC_MEANING[(fw, ex)] + (" (default)" if DEFAULT_EXEC[fw] == ex else ""))
            for (fw, ex) in EXEC_MEANING]
    out += table(("framework", "exec", "meaning"), rows)
    out += ("All frameworks: synthetic inputs created on the device before timing; inference = eval-mode forward "
            "without gradients; training step = forward + cross-entropy + backward + SGD with momentum 0.9. "
            "bf16 = mixed precision (torch autocast, Paddle AMP O1, Flax bf16 compute dtype), weights fp32. "
            "Threads: the same count for every cell through OMP/MKL/OpenBLAS variables, the framework's own "
            "setter, and a CPU-affinity mask (which XLA follows). Every cell runs in a fresh process.\n\n")
    settings = {}
    for r in records:
        if r.get("settings"):
            settings.setdefault(r["cell"]["framework"], set()).update(f"{k}={v}" for k, v in r["settings"].items())
    if settings:
        out += table(("framework", "runner settings seen"),
                     [(fw, ", ".join(sorted(v))) for fw, v in sorted(settings.items(), key=lambda kv: framework_order(kv[0]))])
    return out


def load_note(records: list[dict]) -> str:
    busy = [r for r in records if r.get("loadavg_start") is not None and r.get("env")
            and r["loadavg_start"] > r["env"].get("threads", 1) + 0.5]
    if not busy:
        return ""
    loads = [r["loadavg_start"] for r in busy]
    return (f"> **Busy machine:** {len(busy)} of {len(records)} cells started with the 1-minute load average above "
            f"the thread count (up to {max(loads):.1f}). Other processes competed for the cores: read the "
            "throughputs as pessimistic and the spreads as inflated.\n\n")


def run_section(meta: dict, level: int = 2) -> str:
    out = _h(level, "What was run")
    rows = [(k, _esc(str(v))) for k, v in meta.items() if k not in ("notes",)]
    out += table(("", ""), rows)
    for note in meta.get("notes", []):
        out += f"- {note}\n"
    return out + ("\n" if meta.get("notes") else "")


def plots_section(plots: Sequence[str], level: int = 2) -> str:
    out = _h(level, "Plots")
    if not plots:
        return out + "No plots (no successful model cells).\n\n"
    return out + "".join(f"![{p}]({p})\n\n" for p in plots)


def bench_markdown(records: list[dict], derived: dict, meta: dict, plots: Sequence[str]) -> str:
    head = "# resnet-rosetta benchmark\n\n"
    if meta.get("interrupted"):
        head += "> **Interrupted:** this report holds the cells measured before Ctrl-C.\n\n"
    return (head + load_note(records) + run_section(meta) + ratio_section(derived["ratios"])
            + scaling_section(derived.get("scaling", [])) + best_section(derived["best"]) + results_tables(records)
            + peaks_section(derived["peaks"], host_noise=derived.get("host_noise"))
            + plots_section(plots) + failures_section(records) + environment_section(records, meta))
