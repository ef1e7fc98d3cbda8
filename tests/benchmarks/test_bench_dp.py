"""`bench --devices N` (data-parallel training throughput): run as a user runs it for every framework
(2 replicas of its own engine on the CPU, the one-device figure interleaved in the same cell), the
Scaling section rendered from a results file, and the GPU plan decided on fakes (no GPU here)."""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from resnet_rosetta.benchmarks import pipeline, report_index
from resnet_rosetta.benchmarks.config import DEFAULT_EXEC, Cell, default_threads
from resnet_rosetta.benchmarks.dp import cell_env
from resnet_rosetta.benchmarks.results import read_jsonl, scaling
from resnet_rosetta.cli.main import main
from resnet_rosetta.frameworks import FRAMEWORKS, devices
from resnet_rosetta.frameworks.devices import Sight

CLI = Path(sys.executable).with_name("resnet-rosetta")
# one worker runs them all under pytest-xdist: each framework's bench run is made once, not once per worker
pytestmark = pytest.mark.xdist_group("bench_dp")


@pytest.fixture(scope="module")
def dp_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, str]]:
    """One tiny `bench --devices 2` per framework, run on first use (resnet18_small, 16 px, 2 images
    per replica, one step per repeat, 2 ABBA rounds) in its usual mode, and JAX also op by op
    (unsupported there): framework -> (output folder, stdout). One run each keeps every test short."""
    if default_threads() < 2:
        pytest.skip("two replicas need two cores")
    done: dict[str, tuple[Path, str]] = {}

    def run(framework: str) -> tuple[Path, str]:
        if framework not in done:
            out = tmp_path_factory.mktemp("dp") / "bench"
            proc = subprocess.run([str(CLI), "bench", "--frameworks", framework, "--arch", "resnet18_small",
                                   "--mode", "train", "--exec", "default,eager", "--devices", "2", "--batch", "2",
                                   "--size", "16", "--iters", "1", "--repeats", "1", "--rounds", "2", "--warmup", "0",
                                   "--no-peak", "--device", "cpu", "--no-progress", "--mem-limit", "8",
                                   "--out", str(out)], capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-2000:]
            done[framework] = out, proc.stdout
        return done[framework]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bench_devices_2_times_two_replicas_against_one_device_in_the_same_cell(dp_runs, framework):
    out, stdout = dp_runs(framework)
    (record,) = [r for r in read_jsonl(out / "results.jsonl")
                 if r["cell"]["framework"] == framework and r["cell"]["exec"] == DEFAULT_EXEC[framework]]
    assert record["status"] == "ok", record["message"]
    m, cell = record["metrics"], record["cell"]
    assert cell["devices"] == m["devices"] == 2 and m["global_batch"] == 4 and not cell["with_reference"]
    shared = framework == "flax"  # JAX's devices of one process share one XLA thread pool
    assert m["threads_per_replica"] == (None if shared else default_threads() // 2)
    assert m["one_device"]["threads"] == default_threads()
    assert record["settings"]["data_parallel"]["replicas"] == 2
    for figures, batch in ((m, 4), (m["one_device"], 2)):  # global img/s from the timed repeats
        assert all(math.isfinite(v) and v > 0 for v in figures["img_s_repeats"])
        assert figures["img_s_median"] == pytest.approx(statistics.median(batch * m["iters"] / s
                                                                          for s in figures["repeat_s"]))
    # efficiency = img/s(2) / (2 x img/s(1)), round by round, both from this cell's interleaved repeats
    rounds = [(4 / n) / (2 * 2 / one) for n, one in zip(m["repeat_s"], m["one_device"]["repeat_s"])]
    assert len(rounds) == m["rounds"] == 2
    assert m["scaling_efficiency"]["median"] == pytest.approx(statistics.median(rounds))
    (row,) = [r for r in scaling([record])]
    assert row["speedup"] == pytest.approx(2 * row["efficiency"])
    assert f"scaling: resnet18_small {framework} x2 devices (global batch 4)" in stdout
    csv_rows = (out / "results.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    assert {"devices", "global_batch", "scaling_efficiency"} <= set(header)
    assert "## Scaling (data parallel)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_an_engine_mode_data_parallel_does_not_measure_is_recorded_unsupported(dp_runs):
    out, _ = dp_runs("flax")
    flax = [r for r in read_jsonl(out / "results.jsonl") if r["cell"]["framework"] == "flax"]
    assert [(r["cell"]["exec"], r["status"]) for r in flax] == [("compiled", "ok"), ("eager", "unsupported")]
    assert flax[1]["message"] == "bench --devices > 1 measures JAX under jit (--exec compiled) only"


def _record(framework: str, devices: int, img_s: float, one: float | None = None) -> dict:
    cell = Cell(framework=framework, arch="resnet18", mode="train", batch=4, devices=devices, threads=2)
    metrics = {"img_s_median": img_s, "img_s_q25": img_s, "img_s_q75": img_s, "spread": 0.0, "ms_step_median": 1.0,
               "first_call_s": 1.0, "gflop_s": 1.0}
    if devices > 1:
        eff = img_s / (devices * one)
        metrics.update(devices=devices, global_batch=4 * devices, threads_per_replica=1, rounds=2,
                       one_device={"img_s_median": one, "threads": 2},
                       scaling_efficiency={"median": eff, "q25": eff * 0.9, "q75": eff * 1.1, "per_round": [eff]})
    return {"cell": cell.to_dict(), "status": "ok", "message": "", "metrics": metrics, "env": {},
            "settings": {"data_parallel": {"engine": "DDP", "batch_norm": "local"}} if devices > 1 else {}}


def test_the_scaling_section_renders_from_a_results_file(tmp_path):
    records = [_record("torch", 1, 10.0), _record("torch", 2, 12.0, one=10.0), _record("flax", 2, 9.0, one=6.0)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    records = read_jsonl(tmp_path / "results.jsonl")
    derived = pipeline.write_outputs(tmp_path, records, {"notes": []})
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Scaling (data parallel)")[1].split("\n## ")[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| resnet18")]
    assert [r.split(" | ")[1] for r in rows] == ["torch", "flax"]  # the one-device cell has no scaling row
    assert "| 2 | 4 | 8 | 1 per replica; one device 2 | 10 | 12 | 1.2 | 0.6 |" in rows[0]
    assert "| 6 | 9 | 1.5 | 0.75 |" in rows[1]
    assert "4 x 2 devices" in md  # the throughput tables name the replicas
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["cell"]["framework"], r["efficiency"]) for r in summary["scaling"]] == [("torch", 0.6), ("flax", 0.75)]
    index = report_index.index_markdown(meta={}, plan_measures=[], plan_skips=[], records=records, derived=derived,
                                        parity={"status": "skipped"}, list_text=None, files=[])
    assert "### Scaling (data parallel)" in index and "resnet18 torch x2: efficiency 0.60" in index
    no_dp = pipeline.write_outputs(tmp_path, records[:1], {"notes": []})
    assert no_dp["scaling"] == [] and "Scaling" not in (tmp_path / "report.md").read_text()


def test_gpu_data_parallel_is_planned_on_fakes_and_refused_beyond_the_gpus_seen(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("resnet_rosetta.benchmarks.pipeline.missing_modules", lambda fw: [])
    two, one = Sight(count=2, build="CUDA 13.0", name="H200"), Sight(count=1, build="CUDA 13.0", name="H200")
    seen = {"torch": two, "paddle": two, "flax": one}
    monkeypatch.setattr(devices, "probe", lambda fws, **kw: {fw: seen[fw] for fw in fws})
    argv = ["bench", "--arch", "resnet18", "--mode", "train", "--exec", "default,eager", "--devices", "2", "--threads", "1", "--no-peak"]
    assert main([*argv, "--frameworks", "torch,paddle", "--plan"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "cell: resnet18 torch/ours train b16 x2 devices fp32 eager 224px",
        "cell: resnet18 paddle/ours train b16 x2 devices fp32 eager 224px"]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2 and not out.exists()
    assert capsys.readouterr().err.strip() == "resnet-rosetta bench: error: --devices 2 needs 2 GPUs; flax sees 1"


def test_a_data_parallel_cell_starts_with_its_host_devices():
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "PATH": "/bin"}
    assert cell_env(Cell(framework="flax", arch="resnet18", devices=2), env) == {
        "XLA_FLAGS": "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=2", "PATH": "/bin"}
    assert cell_env(Cell(framework="flax", arch="resnet18"), env) == env


def test_report_full_on_cpu_adds_two_replica_training_cells_and_the_default_report_none():
    from resnet_rosetta.benchmarks.presets import build_plan

    fws = list(FRAMEWORKS)
    scaled = [c.label for c in build_plan("full", fws, 2, "cpu").cells if c.devices > 1]
    assert scaled == [f"resnet18 {fw}/ours train b4 x2 devices fp32 {'compiled' if fw == 'flax' else 'eager'} 224px"
                      for fw in fws]
    assert not any(c.devices > 1 for level, device in (("default", "cpu"), ("quick", "cpu"), ("full", "gpu"))
                   for c in build_plan(level, fws, 2, device).cells)
    assert not any(c.devices > 1 for c in build_plan("full", fws, 1, "cpu").cells)  # one core: no replicas
