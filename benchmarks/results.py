"""Records in and out: JSON lines, CSV, and what is derived from them (matmul peaks, fractions of
peak, ours/reference ratios, the best configuration per framework)."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable

from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.workload import MATH_MODES
from .config import FRAMEWORKS

RATIO_BOUND = 0.97
SPREAD_BOUND = 0.05
# A cell is steady when its spread is within max(SPREAD_BOUND, FLOOR_FACTOR x the host's own floor, the
# spread of the fixed matmul loop the probes timed in the same run): on a noisy VM the 5% alone would
# judge the host, not the cell (docs/benchmarks.md).
FLOOR_FACTOR = 1.5

CSV_FIELDS = (
    "status", "kind", "arch", "framework", "impl", "model", "reference_model", "mode", "batch", "precision", "exec", "layout", "size",
    "device", "threads", "devices", "global_batch", "threads_per_replica", "one_device_img_s_median",
    "scaling_efficiency", "scaling_efficiency_q25", "scaling_efficiency_q75", "warmup", "iters", "repeats", "img_s_median", "img_s_q25", "img_s_q75", "spread",
    "steal_fraction",
    "ms_step_median", "ms_step_q25", "ms_step_q75", "first_call_s", "setup_s", "peak_memory_bytes",
    "memory_kind", "math_mode", "gflop_s", "peak_mode", "peak_gflop_s", "peak_fraction", "matmul_fp32_gflop_s",
    "matmul_tf32_gflop_s", "matmul_bf16_gflop_s", "matmul_fp16_gflop_s", "tf32",
    "host_noise_spread",
    "reference_img_s_median", "ratio_median", "ratio_q25", "ratio_q75",
    "framework_version", "device_name", "gpu_driver", "gpu_sm_clock_mhz", "gpu_power_limit_w", "gpu_other_processes",
    "cpu_model", "loadavg_start", "loadavg_end", "wall_s", "message",
)


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in records))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ok(record: dict) -> bool:
    return record.get("status") == "ok"


def model_records(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r["cell"].get("kind") == "model"]


def reference_pair(record: dict) -> dict | None:
    """The ours/reference pair attempted inside an ok model record (ok or failed), if any."""
    return record.get("metrics", {}).get("pair") if ok(record) else None


def measured_pair(record: dict) -> dict | None:
    """The ours/reference pair measured inside an ok model record, if it measured one."""
    pair = reference_pair(record)
    return pair if pair and ok(pair) else None


def paired_reference_rows(records: Iterable[dict]) -> list[dict]:
    """The reference model's side of every measured pair, shaped like a model record (for the
    throughput tables and plots; marked `paired`, and without a memory figure: the process held
    both models)."""
    return paired_rows(records, "reference")


def paired_rows(records: Iterable[dict], side: str) -> list[dict]:
    """One side ("ours" or "reference") of every measured pair, shaped like a model record and
    marked `paired`: the two sides of a pair were timed interleaved, so only they compare fairly."""
    rows = []
    for r in model_records(records):
        pair = measured_pair(r)
        if pair:
            m = {**pair[side], "steal_fraction": pair.get("steal_fraction")}
            model = r.get("reference_model") if side == "reference" else r.get("model")
            rows.append({**r, "cell": {**r["cell"], "impl": side, "with_reference": False}, "metrics": m,
                         "model": model, "reference_model": None, "paired": True})
    return rows


def machine_peaks(records: Iterable[dict]) -> dict:
    """{math mode: {"gflop_s": best over frameworks, "by": framework, "per_framework": {...}}}
    (modes: common/workload.py MATH_MODES; a probe of an older run keys them by precision)."""
    out: dict = {}
    for r in records:
        if r["cell"].get("kind") != "peak" or not ok(r):
            continue
        fw = r["cell"]["framework"]
        for mode, m in r["metrics"].get("matmul_peak", {}).items():
            entry = out.setdefault(mode, {"gflop_s": None, "by": None, "per_framework": {}})
            g = m.get("gflop_s")
            entry["per_framework"][fw] = g
            if g is not None and (entry["gflop_s"] is None or g > entry["gflop_s"]):
                entry["gflop_s"], entry["by"] = g, fw
    return out


def cell_math_mode(record: dict) -> str:
    """The math mode a model record ran in (recorded by the cell; its precision in older runs)."""
    return record.get("metrics", {}).get("math_mode") or record["cell"]["precision"]


def probe_host_noise(record: dict) -> dict | None:
    """The fp32 matmul loop a probe record timed like a cell (spread, gflop_s, ...), if any."""
    return ((record.get("metrics", {}).get("matmul_peak", {}).get("fp32") or {}).get("host_noise")
            if record["cell"].get("kind") == "peak" and ok(record) else None)


def host_noise(records: Iterable[dict]) -> dict[str, dict]:
    """{framework: its probe's host-noise loop}."""
    return {r["cell"]["framework"]: noise for r in records if (noise := probe_host_noise(r))}


def derive(records: list[dict]) -> dict:
    """Add peak fractions to the model records (in place): each cell's GFLOP/s over the machine's
    matmul peak in the cell's math mode (fp32 strict, tf32, bf16); return peaks, ratios and bests."""
    peaks = machine_peaks(records)
    for r in model_records(records):
        if not ok(r):
            continue
        mode = cell_math_mode(r)  # each cell against the peak of the mode it computed in
        peak = (peaks.get(mode) or {}).get("gflop_s")
        pair = measured_pair(r)
        for m in (r["metrics"], *((pair["ours"], pair["reference"]) if pair else ())):
            m["peak_mode"], m["peak_gflop_s"] = mode, peak
            m["peak_fraction"] = m["gflop_s"] / peak if peak else None
    noise = host_noise(records)
    limit = steady_limit(noise)
    for r in model_records(records):
        if ok(r) and r["metrics"].get("spread") is not None:
            r["metrics"]["steady"] = r["metrics"]["spread"] <= limit
    return {"peaks": peaks, "ratios": ratios(records), "best": best_per_framework(records),
            "host_noise": noise, "steady_limit": limit, "scaling": scaling(records)}


def scaling(records: Iterable[dict]) -> list[dict]:
    """Every data-parallel cell (`devices` > 1, benchmarks/dp.py): img/s on N devices (global batch)
    and on one, timed interleaved in the cell, and the scaling efficiency img/s(N) / (N x img/s(1)):
    the median over the rounds of that round's efficiency, its quartiles as the noise."""
    out = []
    for r in model_records(records):
        c = r["cell"]
        n = c.get("devices", 1)
        if n <= 1:
            continue
        row = {"cell": c, "status": r["status"], "message": r.get("message", ""), "devices": n,
               "global_batch": c["batch"] * n, "img_s": None, "one_device_img_s": None, "efficiency": None,
               "efficiency_q25": None, "efficiency_q75": None, "speedup": None, "threads_per_replica": None,
               "one_device_threads": None, "rounds": None, "engine": None, "batch_norm": None, "threads": None}
        if ok(r):
            m, eff = r["metrics"], r["metrics"]["scaling_efficiency"]
            dp = r.get("settings", {}).get("data_parallel", {})
            row.update(img_s=m["img_s_median"], one_device_img_s=m["one_device"]["img_s_median"],
                       efficiency=eff["median"], efficiency_q25=eff["q25"], efficiency_q75=eff["q75"],
                       speedup=eff["median"] * n, threads_per_replica=m["threads_per_replica"],
                       one_device_threads=m["one_device"]["threads"], rounds=m["rounds"],
                       engine=dp.get("engine"), batch_norm=dp.get("batch_norm"), threads=dp.get("threads"))
        out.append(row)
    return out


def steady_limit(noise: dict[str, dict]) -> float:
    """The spread a steady cell stays within: max(SPREAD_BOUND, FLOOR_FACTOR x the median host floor
    of the probes in this run, the higher middle one of an even count); SPREAD_BOUND alone when no
    probe timed the floor."""
    floors = sorted(v["spread"] for v in noise.values() if v.get("spread") is not None)
    return max(SPREAD_BOUND, FLOOR_FACTOR * floors[len(floors) // 2]) if floors else SPREAD_BOUND


def ratios(records: Iterable[dict]) -> list[dict]:
    """ours / reference throughput of every cell measured with its reference: the median over the
    ABBA rounds of the round's ratio, with the quartiles of those ratios as its noise."""
    out = []
    for r in model_records(records):
        if not r["cell"].get("with_reference"):
            continue
        pair = reference_pair(r) or {}
        if ok(r):
            status, message = pair.get("status", "not_run"), pair.get("message", "")
        else:
            status, message = r["status"], f"our model: {r.get('message') or r['status']}"
        row = {"cell": r["cell"], "status": status, "message": message, "ours_img_s": None,
               "reference_img_s": None, "ratio": None, "ratio_q25": None, "ratio_q75": None, "rounds": None,
               "steal_fraction": None, "passed": None}
        if measured_pair(r):
            row.update(ours_img_s=pair["ours"]["img_s_median"], reference_img_s=pair["reference"]["img_s_median"],
                       ratio=pair["ratio"]["median"], ratio_q25=pair["ratio"]["q25"], ratio_q75=pair["ratio"]["q75"],
                       rounds=pair["rounds"], steal_fraction=pair.get("steal_fraction"))
            row["passed"] = row["ratio"] >= RATIO_BOUND
        out.append(row)
    return out


def within_noise(ratio_row: dict) -> bool:
    """A ratio below the bound whose upper quartile over the rounds still reaches it."""
    return ratio_row["ratio_q75"] is not None and ratio_row["ratio_q75"] >= RATIO_BOUND


def best_per_framework(records: Iterable[dict]) -> dict:
    """{(arch, mode): {framework: best ok record of our implementation}} by median img/s."""
    best: dict = {}
    for r in model_records(records):
        c = r["cell"]
        if not ok(r) or c["impl"] != "ours":
            continue
        slot = best.setdefault((c["arch"], c["mode"]), {})
        if c["framework"] not in slot or r["metrics"]["img_s_median"] > slot[c["framework"]]["metrics"]["img_s_median"]:
            slot[c["framework"]] = r
    return best


def flat_row(r: dict) -> dict:
    c, m, env = r["cell"], r.get("metrics", {}), r.get("env", {})
    row = {**{k: c.get(k) for k in ("kind", "arch", "framework", "impl", "mode", "batch", "precision", "exec",
                                    "layout", "size", "device", "threads", "warmup", "repeats")},
           **{k: m.get(k) for k in CSV_FIELDS if k in m},
           "iters": m.get("iters", c.get("iters")),
           "status": r.get("status"), "message": r.get("message", ""), "model": r.get("model"),
           "reference_model": r.get("reference_model"),
           "framework_version": env.get("framework_version"), "device_name": env.get("device_name"),
           "tf32": (r.get("settings", {}).get("tf32") or {}).get("read"),
           **{f"gpu_{k}": (env.get("gpu") or {}).get(k) for k in ("driver", "sm_clock_mhz", "power_limit_w",
                                                                   "other_processes")},
           "cpu_model": env.get("cpu_model"), "loadavg_start": r.get("loadavg_start"),
           "loadavg_end": r.get("loadavg_end"), "wall_s": r.get("wall_s")}
    n = c.get("devices", 1)
    row.update(devices=n, global_batch=c["batch"] * n if c.get("kind") == "model" else None)
    if n > 1:
        if ok(r):
            eff = m["scaling_efficiency"]
            row.update(one_device_img_s_median=m["one_device"]["img_s_median"], scaling_efficiency=eff["median"],
                       scaling_efficiency_q25=eff["q25"], scaling_efficiency_q75=eff["q75"])
    pair = measured_pair(r)
    if pair:
        row.update(reference_img_s_median=pair["reference"]["img_s_median"], ratio_median=pair["ratio"]["median"],
                   ratio_q25=pair["ratio"]["q25"], ratio_q75=pair["ratio"]["q75"])
    if c.get("kind") == "peak":
        mp = m.get("matmul_peak", {})
        for mode in MATH_MODES:
            row[f"matmul_{mode}_gflop_s"] = (mp.get(mode) or {}).get("gflop_s")
        row["host_noise_spread"] = (probe_host_noise(r) or {}).get("spread")
    return row


def to_csv(records: Iterable[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        row = flat_row(r)
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()})
    return buf.getvalue()


def framework_order(name: str) -> int:
    return FRAMEWORKS.index(name) if name in FRAMEWORKS else len(FRAMEWORKS)
