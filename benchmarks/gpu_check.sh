#!/usr/bin/env bash
# The first run on a machine with an NVIDIA GPU: which frameworks see it, the GPU tests, then a short
# GPU benchmark and its report; under 8 minutes (each step has a time limit, and the benchmark gets
# what is left of 450 s; stopped early, it keeps its finished cells, as after Ctrl-C).
#
#   benchmarks/gpu_check.sh [OUT_DIR]      (from the repository root; default OUT_DIR gpu-check)
#
# Writes OUT_DIR/tests.log, OUT_DIR/bench/ (results.jsonl, report.md, plots) and prints the report's
# GPU summary. Exit status: 0 when the tests passed and the benchmark wrote its results.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RR=${RESNET_ROSETTA:-.venv/bin/resnet-rosetta}
OUT=${1:-gpu-check}
mkdir -p "$OUT"
status=0
START=$(date +%s)
left() { local s=$((450 - ($(date +%s) - START))); echo $((s > 20 ? s : 20)); }

echo "== 1/4 the GPU (nvidia-smi)"
if command -v nvidia-smi >/dev/null; then
    timeout 15 nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,memory.used,memory.total \
        --format=csv || true
else
    echo "nvidia-smi not on PATH"
fi

echo "== 2/4 which frameworks see a GPU"
FWS=$(timeout 60 "$PY" -c '
from resnet_rosetta.benchmarks.cell import gpu_count
from resnet_rosetta.frameworks import FRAMEWORKS
seen = [fw for fw in FRAMEWORKS if gpu_count(fw) > 0]
print(",".join(seen))
' 2>"$OUT/detect.log" | tail -n 1)
echo "frameworks on the GPU: ${FWS:-none}"
if [ -z "$FWS" ]; then
    echo "no framework sees a GPU: see the README's GPU section (CUDA builds of torch, Paddle, jax[cuda])"
    exit 1
fi

echo "== 3/4 GPU tests (skipped per framework where it sees no GPU; limit 280 s)"
timeout -s INT -k 15 280 "$PY" -m pytest -q -m gpu -rs -p no:cacheprovider \
    tests/frameworks/test_gpu_runners.py::test_gpu_step_runs_with_device_memory_and_tf32_read_back \
    tests/frameworks/test_gpu_runners.py::test_gpu_tf32_off_policy_switches_every_framework_off \
    tests/frameworks/test_gpu_runners.py::test_gpu_tf32_switch_changes_the_numbers \
    tests/frameworks/test_gpu_runners.py::test_gpu_probe_measures_each_math_mode \
    tests/frameworks/test_gpu_runners.py::test_gpu_info_names_the_device_and_its_cuda \
    tests/benchmarks/test_bench_cli.py::test_gpu_cell_measures_device_memory \
    tests/guide/test_tf32.py::test_tf32_defaults_on_gpu \
    2>&1 | tee "$OUT/tests.log" | tail -n 25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== 4/4 short GPU benchmark: resnet50 inference, batch 128, fp32 and bf16 ($(left) s left)"
rm -rf "$OUT/bench"
timeout -s INT -k 15 "$(left)" "$RR" bench --device gpu --frameworks "$FWS" --arch resnet50 --mode infer --batch 128 \
    --precision fp32,bf16 --exec default --reference none --warmup 1 --repeats 3 --repeat-s 0.5 \
    --timeout 100 --no-progress --out "$OUT/bench" >"$OUT/bench.log" 2>&1
[ -s "$OUT/bench/results.jsonl" ] || { echo "the benchmark wrote no results: $OUT/bench.log"; tail -n 20 "$OUT/bench.log"; exit 1; }
"$PY" - "$OUT/bench/results.jsonl" <<'PYEOF'
import sys
from resnet_rosetta.benchmarks import results
recs = results.read_jsonl(sys.argv[1])
derived = results.derive(recs)
for mode, p in derived["peaks"].items():
    print(f"peak {mode:5s} {p['gflop_s'] or 0:10.0f} GFLOP/s (best by {p['by']})")
for r in results.model_records(recs):
    c, m, gpu = r["cell"], r.get("metrics", {}), r.get("env", {}).get("gpu", {})
    if r["status"] != "ok":
        print(f"{c['framework']:6s} {c['precision']}: {r['status']} {r.get('message', '')[:120]}")
        continue
    frac = m.get("peak_fraction")
    print(f"{c['framework']:6s} {c['precision']} ({m.get('math_mode')}): {m['img_s_median']:8.0f} img/s, "
          f"{'-' if frac is None else f'{frac:.0%}'} of the {m.get('peak_mode')} peak, "
          f"{(m.get('peak_memory_bytes') or 0) / 2**20:.0f} MiB, TF32 {(r.get('settings', {}).get('tf32') or {}).get('read')}, "
          f"{gpu.get('name')} {gpu.get('sm_clock_mhz')} MHz, {gpu.get('other_processes')} other processes")
PYEOF
echo "report: $OUT/bench/report.md; tests: $OUT/tests.log"
exit $status
