"""`resnet-rosetta bench` as a user runs it: tiny configurations (resnet18 at 32 px, batch 2)."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.frameworks.devices import probe

# One thread: tests share the machine with other work, and a 2-thread OpenMP pool on 2 busy cores
# crawls (barriers wait for descheduled threads); tests check behaviour, not speed.
TINY = ["--arch", "resnet18", "--size", "32", "--batch", "2", "--repeats", "2", "--iters", "1", "--warmup", "0",
        "--threads", "1", "--no-progress"]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet_rosetta.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("flag, value, named", [("--arch", "resnet19", "architecture 'resnet19'"),
                                                ("--frameworks", "tensorflow", "framework 'tensorflow'"),
                                                ("--mode", "eval", "mode 'eval'"),
                                                ("--precision", "fp16", "precision 'fp16'"),
                                                ("--batch", "two", "integers")])
def test_bad_names_exit_2_with_one_line_and_write_nothing(tmp_path, flag, value, named):
    out = tmp_path / "out"
    p = cli("bench", flag, value, "--out", str(out))
    assert p.returncode == 2
    assert named in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [("--repeats", "0"), ("--rounds", "0"), ("--warmup", "-1")])
def test_timer_settings_out_of_range_exit_2_and_write_nothing(tmp_path, flag, value):
    out = tmp_path / "out"
    p = cli("bench", "--frameworks", "torch", flag, value, "--out", str(out))
    assert p.returncode == 2 and flag in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_gpu_without_gpu_fails_clearly(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    p = cli("bench", "--device", "gpu", "--frameworks", "torch", *TINY, "--out", str(tmp_path / "out"))
    assert p.returncode == 2 and "no framework sees a CUDA GPU (torch: " in p.stderr and "--device cpu" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_existing_output_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("earlier results\n")
    p = cli("bench", "--frameworks", "torch", *TINY, "--out", str(out))
    assert p.returncode == 2 and "--overwrite" in p.stderr
    assert (out / "results.jsonl").read_text() == "earlier results\n"


@pytest.mark.slow
def test_torch_sweep_writes_every_output_with_environment_and_ratios(tmp_path):
    out = tmp_path / "out"
    p = cli("bench", "--frameworks", "torch", "--mode", "infer", *TINY, "--rounds", "3", "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    recs = records(out)
    assert [(r["cell"]["kind"], r["cell"]["with_reference"]) for r in recs] == [("peak", False), ("model", True)]
    ours, pair = recs[1], recs[1]["metrics"]["pair"]
    assert (ours["model"], ours["reference_model"]) == ("frameworks/torch/model.py", "torchvision.models")
    assert recs[0]["model"] is None and recs[0]["reference_model"] is None  # the peak probe times no model
    assert pair["status"] == "ok", pair["message"]
    ratio = pair["ratio"]
    assert len(ratio["per_round"]) == pair["rounds"] == 4 and ratio["q25"] <= ratio["median"] <= ratio["q75"]
    # the ratio is computed from the same rounds as the recorded times (no speed target in a timed test)
    ours_s, ref_s = pair["ours"]["repeat_s"], pair["reference"]["repeat_s"]
    assert ratio["per_round"] == pytest.approx([r / o for o, r in zip(ours_s, ref_s, strict=True)], rel=1e-9)
    q25, median, q75 = np.percentile(ratio["per_round"], [25, 50, 75])
    assert (ratio["q25"], ratio["median"], ratio["q75"]) == pytest.approx((q25, median, q75), rel=1e-9)
    for r, timed in ((ours, 2), ({**ours, "metrics": pair["ours"]}, 4), ({**ours, "metrics": pair["reference"]}, 4)):
        assert r["status"] == "ok", r["message"]
        m, env = r["metrics"], r["env"]
        assert m["img_s_q25"] <= m["img_s_median"] <= m["img_s_q75"] and m["img_s_median"] > 0
        assert len(m["repeat_s"]) == timed and m["first_call_s"] > 0  # --repeats alone, --rounds in the pair
        assert 0 < m["peak_fraction"] and m["gflop_s"] > 0
        assert env["threads"] == 1 and env["cpu_model"] and env["cpu_flags"] is not None
        assert env["framework_version"] and env["device_name"] == "cpu"
        assert r["cell"]["layout"] == "NCHW" and r["cell"]["batch"] == 2 and r["cell"]["precision"] == "fp32"
    assert ours["metrics"]["peak_memory_bytes"] > 2**20  # our model alone, before the reference was built
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(recs) and {"img_s_median", "peak_fraction", "cpu_model"} <= set(rows[0])
    assert float(rows[1]["ratio_median"]) == pytest.approx(ratio["median"], rel=1e-5)
    assert (rows[1]["model"], rows[1]["reference_model"]) == ("frameworks/torch/model.py", "torchvision.models")
    report = (out / "report.md").read_text()
    assert "### resnet18 infer (32x32)" in report and "★" in report
    assert report.count("| resnet18 | torch | torchvision.models | infer |") == 1  # the ratio row
    assert " | torchvision (paired) | eager |" in report  # the reference's throughput row (starred or not)
    assert "Matmul peak" in report and "| fp32 |" in report
    noise = recs[0]["metrics"]["matmul_peak"]["fp32"]["host_noise"]  # timed like the cells: --repeats 2
    assert noise["repeats"] == 2 and noise["iters"] >= 1 and noise["spread"] >= 0 and noise["gflop_s"] > 0
    assert "The host's own noise" in report
    assert float(rows[0]["host_noise_spread"]) == pytest.approx(noise["spread"], rel=1e-5)
    assert json.loads((out / "summary.json").read_text())["host_noise"]["torch"] == noise
    for png in ("plot_resnet18_32px_infer_fp32.png", "plot_best_per_framework.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_paddle_and_flax_cells_run_in_their_usual_modes(tmp_path):
    out = tmp_path / "out"
    p = cli("bench", "--frameworks", "paddle,flax", "--mode", "train", "--reference", "none", "--no-peak", *TINY,
            "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    by_fw = {r["cell"]["framework"]: r for r in records(out)}
    assert by_fw["paddle"]["cell"]["exec"] == "eager" and by_fw["flax"]["cell"]["exec"] == "compiled"
    assert by_fw["flax"]["settings"]["donate_train_state"] is True and by_fw["flax"]["cell"]["layout"] == "NHWC"
    assert all(r["status"] == "ok" and r["metrics"]["img_s_median"] > 0 for r in by_fw.values())


def test_a_batch_that_does_not_fit_is_recorded_and_bigger_ones_skipped(tmp_path):
    out = tmp_path / "out"
    p = cli("bench", "--frameworks", "torch", "--mode", "infer", "--reference", "none", "--no-peak", *TINY[:4],
            "--batch", "2,4", "--mem-limit", "0.25", "--out", str(out))
    assert p.returncode == 1
    recs = records(out)
    assert [r["status"] for r in recs] == ["oom", "skipped"]
    assert "does not fit" in recs[0]["message"]
    report = (out / "report.md").read_text()
    assert "| oom |" in report and "| skipped |" in report


def test_a_cell_over_its_time_limit_is_recorded_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "out"
    p = cli("bench", "--frameworks", "torch", "--mode", "infer,train", "--reference", "none", "--no-peak", *TINY,
            "--timeout", "0.5", "--out", str(out))
    assert p.returncode == 1
    assert [r["status"] for r in records(out)] == ["timeout", "timeout"]  # the second cell still ran


def test_ctrl_c_keeps_finished_cells_and_a_valid_report(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "resnet_rosetta.cli.main", "bench", "--frameworks", "torch",
                             "--mode", "train", "--reference", "none", "--no-peak", *TINY[:4], "--batch", "2,3,4",
                             *TINY[6:], "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "results.jsonl").exists() and (out / "results.jsonl").read_text().strip():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    recs = records(out)
    assert [r["status"] for r in recs] == ["ok", "interrupted", "not_run"]
    assert recs[0]["cell"]["mode"] == "train" and recs[0]["metrics"]["img_s_median"] > 0
    report = (out / "report.md").read_text()
    assert "Interrupted" in report and "| interrupted |" in report and "### resnet18 train (32x32)" in report


@pytest.mark.gpu
def test_gpu_cell_measures_device_memory(tmp_path):
    if not probe(["torch"])["torch"].count:
        pytest.skip("torch sees no GPU")
    out = tmp_path / "out"
    p = cli("bench", "--device", "gpu", "--frameworks", "torch", "--mode", "infer", "--reference", "none", *TINY,
            "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    model = [r for r in records(out) if r["cell"]["kind"] == "model"]
    m = model[0]["metrics"]
    assert m["memory_kind"] == "device (allocated, after warm-up)" and m["peak_memory_bytes"] > 0
    # conftest sets NVIDIA_TF32_OVERRIDE=0: the cell is strict fp32, divided by the strict fp32 peak
    assert m["math_mode"] == m["peak_mode"] == "fp32" and 0 < m["peak_fraction"] < 1
    assert model[0]["settings"]["tf32"]["read"].startswith("cuda.matmul.fp32_precision=")
    assert model[0]["env"]["gpu"]["source"] in ("nvml", "nvidia-smi") and model[0]["env"]["gpu"]["name"]
    assert "read back: cuda.matmul" in (out / "report.md").read_text()
