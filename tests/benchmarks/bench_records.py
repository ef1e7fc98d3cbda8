"""Benchmark result records as a sweep writes them, built by hand for the tests of the parts that
read them (derived figures, Markdown, plots)."""
from __future__ import annotations

from resnet_rosetta.benchmarks import timing
from resnet_rosetta.benchmarks.config import Cell


def make_record(fw, impl, img_s, *, arch="resnet50", mode="infer", precision="fp32", spread=0.01, status="ok", batch=16):
    c = Cell(framework=fw, arch=arch, impl=impl, mode=mode, precision=precision, batch=batch, threads=2)
    rec = {"cell": c.to_dict(), "model": c.model, "reference_model": c.reference_model, "status": status, "message": "" if status == "ok" else "boom", "settings": {},
           "env": {"framework_version": "1.0", "threads": 2, "cpu_model": "test cpu", "cpu_flags": ["avx2"]}}
    if status == "ok":
        rec["metrics"] = {"img_s_median": img_s, "img_s_q25": img_s * 0.99, "img_s_q75": img_s * 1.0, "spread": spread,
                          "ms_step_median": 1000 * batch / img_s, "first_call_s": 1.0, "gflop_s": img_s * 8.2,
                          "peak_memory_bytes": 2**30}
    else:
        rec["metrics"] = {}
    return rec


def make_paired(fw, ours_img_s, ref_img_s, *, status="ok", round_ratios=None, pair_status="ok"):
    """Our model's record with the ours/reference pair measured in its cell."""
    rec = make_record(fw, "ours", ours_img_s, status=status)
    rec["cell"]["with_reference"] = True
    rec["reference_model"] = Cell.from_dict(rec["cell"]).reference_model
    if status == "ok":
        pair = {"status": pair_status, "message": "" if pair_status == "ok" else "boom"}
        if pair_status == "ok":
            per = round_ratios or [ours_img_s / ref_img_s] * 4
            q25, q50, q75 = timing.quartiles(per)
            pair.update(ours=make_record(fw, "ours", ours_img_s)["metrics"],
                        reference=make_record(fw, "reference", ref_img_s)["metrics"],
                        ratio={"median": q50, "q25": q25, "q75": q75, "per_round": per}, rounds=len(per),
                        steal_fraction=0.002)
        rec["metrics"]["pair"] = pair
    return rec


def make_peak(fw, fp32, bf16, noise_spread=None):
    rec = {"cell": Cell(framework=fw, kind="peak").to_dict(), "status": "ok", "env": {},
           "metrics": {"matmul_peak": {"fp32": {"gflop_s": fp32}, "bf16": {"gflop_s": bf16}}}}
    if noise_spread is not None:
        rec["metrics"]["matmul_peak"]["fp32"]["host_noise"] = {"n": 1024, "spread": noise_spread, "gflop_s": 0.9 * fp32,
                                                               "repeats": 5, "iters": 80}
    return rec
