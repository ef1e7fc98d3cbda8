"""The GPU facts every GPU row records, parsed from fake `nvidia-smi` output and a fake NVML module
(no GPU here): name, driver, clocks, power limit, memory, and the other processes on the device."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from resnet_rosetta.benchmarks import gpu_facts

SMI_GPU = "NVIDIA H200, 570.124.06, 1980, 1980, 3201, 3201, 700.00, 312.45, 41, 1234, 143771\n"
SMI_APPS = (f"{os.getpid()}, /work/.venv/bin/python, 1100\n"
            "4242, /usr/bin/python3 -m trainer, a, b, 90112\n")


def fake_smi(argv: list[str]) -> str:
    assert argv[:3] == ["nvidia-smi", "-i", "0"]
    if argv[3].startswith("--query-gpu="):
        assert argv[3].split("=", 1)[1].split(",") == list(gpu_facts.SMI_FIELDS)
        return SMI_GPU
    return SMI_APPS


def test_facts_from_nvidia_smi(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML is tried first: make it not importable
    facts = gpu_facts.gpu_facts(run=fake_smi, which=lambda name: "/usr/bin/nvidia-smi")
    assert facts["source"] == "nvidia-smi" and facts["name"] == "NVIDIA H200" and facts["driver"] == "570.124.06"
    assert (facts["sm_clock_mhz"], facts["sm_clock_max_mhz"], facts["power_limit_w"]) == (1980, 1980, 700)
    assert facts["memory_total_bytes"] == 143771 * 2 ** 20 and facts["temperature_c"] == 41
    mine, other = facts["processes"]
    assert mine["this_cell"] and not other["this_cell"] and facts["other_processes"] == 1
    assert other == {"pid": 4242, "name": "/usr/bin/python3 -m trainer, a, b", "used_memory_bytes": 90112 * 2 ** 20,
                     "this_cell": False}


def test_not_supported_fields_become_none_and_a_short_line_is_refused():
    facts = gpu_facts.parse_smi_gpu("Tesla T4, 535.1, 300, 1590, 405, 5001, [N/A], [Not Supported], 30, 0, 15360")
    assert facts["power_limit_w"] is None and facts["power_draw_w"] is None and facts["sm_clock_mhz"] == 300
    with pytest.raises(ValueError, match="expected 11"):
        gpu_facts.parse_smi_gpu("Tesla T4, 535.1")
    assert gpu_facts.parse_smi_apps("") == []


def test_facts_from_nvml_on_the_visible_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f1c,GPU-22aa")
    calls = []
    nvml = SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: calls.append("init"), nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=lambda i: pytest.fail("a UUID is looked up by UUID"),
        nvmlDeviceGetHandleByUUID=lambda uuid: ("h", uuid),
        nvmlDeviceGetName=lambda h: b"NVIDIA H200", nvmlSystemGetDriverVersion=lambda: "570.124.06",
        nvmlDeviceGetClockInfo=lambda h, kind: {1: 1755, 2: 3201}[kind],
        nvmlDeviceGetMaxClockInfo=lambda h, kind: {1: 1980, 2: 3201}[kind],
        nvmlDeviceGetPowerManagementLimit=lambda h: 700000, nvmlDeviceGetPowerUsage=lambda h: 95500,
        nvmlDeviceGetTemperature=lambda h, sensor: 38,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=2 ** 30, total=141 * 2 ** 30),
        nvmlDeviceGetComputeRunningProcesses=lambda h: [SimpleNamespace(pid=77, usedGpuMemory=None)],
        nvmlSystemGetProcessName=lambda pid: (_ for _ in ()).throw(PermissionError("other user")))
    facts = gpu_facts.gpu_facts(nvml=nvml, run=lambda argv: pytest.fail("NVML answered: no nvidia-smi"))
    assert calls == ["init", "shutdown"]
    assert facts["source"] == "nvml" and facts["name"] == "NVIDIA H200"
    assert (facts["sm_clock_mhz"], facts["sm_clock_max_mhz"], facts["power_limit_w"], facts["power_draw_w"]) == (
        1755, 1980, 700.0, 95.5)
    assert facts["processes"] == [{"pid": 77, "name": None, "used_memory_bytes": None, "this_cell": False}]
    assert facts["other_processes"] == 1


def test_without_nvml_or_nvidia_smi_the_reason_is_recorded(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    facts = gpu_facts.gpu_facts(which=lambda name: None)
    assert facts == {"source": None, "error": "pynvml not importable; nvidia-smi not on PATH"}

    def failing(argv):
        raise subprocess.CalledProcessError(9, argv, "NVIDIA-SMI has failed because it couldn't communicate")
    facts = gpu_facts.gpu_facts(run=failing, which=lambda name: "/usr/bin/nvidia-smi")
    assert facts["source"] is None and "CalledProcessError" in facts["error"]


def test_gpu_facts_reach_the_csv_and_the_report(monkeypatch):
    from bench_records import make_record
    from resnet_rosetta.benchmarks import report_md, results

    monkeypatch.setitem(sys.modules, "pynvml", None)
    rec = make_record("torch", "ours", 1000.0)
    rec["cell"]["device"] = "gpu"
    rec["env"]["gpu"] = gpu_facts.gpu_facts(run=fake_smi, which=lambda name: "/usr/bin/nvidia-smi")
    rec["settings"]["tf32"] = {"matmul": False, "conv": True, "read": "cuda.matmul.fp32_precision=ieee, "
                                                                      "cudnn.conv.fp32_precision=tf32"}
    values = next(csv.DictReader(io.StringIO(results.to_csv([rec]))))
    assert (values["gpu_driver"], values["gpu_power_limit_w"], values["gpu_other_processes"]) == ("570.124.06", "700", "1")
    assert values["tf32"].startswith("cuda.matmul.fp32_precision=ieee")
    rec["env"].update(device_name="NVIDIA H200", cuda="13.0", cudnn=91300, tf32=rec["settings"]["tf32"])
    text = report_md.environment_section([rec], {})
    assert "CUDA 13.0, CUDNN 91300 | NVIDIA H200 | read back: cuda.matmul.fp32_precision=ieee" in text
    assert "NVIDIA H200, driver 570.124.06, SM clock 1980.0 of 1980.0 MHz, power limit 700.0 W, 1 other" in text
