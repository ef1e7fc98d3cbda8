"""The GPU facts recorded in every GPU row: name, driver, clocks (now and maximum), power limit and
draw, temperature, memory in use, and the other processes on the device (a busy GPU explains a
slow cell). From NVML when `pynvml` is importable, else from `nvidia-smi --query-gpu ... --format=csv`;
neither there: the reason instead. The device is the first of CUDA_VISIBLE_DEVICES (index or UUID),
the one every framework's runner uses. Per-framework CUDA / cuDNN versions come from the runners.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Callable

# nvidia-smi --query-gpu fields, in the order of FACT_KEYS (units dropped with nounits)
SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
              "power.limit", "power.draw", "temperature.gpu", "memory.used", "memory.total")
FACT_KEYS = ("name", "driver", "sm_clock_mhz", "sm_clock_max_mhz", "mem_clock_mhz", "mem_clock_max_mhz",
             "power_limit_w", "power_draw_w", "temperature_c", "memory_used_bytes", "memory_total_bytes")
MIB = 2 ** 20

Run = Callable[[list[str]], str]  # argv -> stdout (raises on failure)


def visible_device() -> str:
    """The first entry of CUDA_VISIBLE_DEVICES (an index or a UUID), else "0"."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return first or "0"


def _number(text: str) -> float | str | None:
    text = text.strip()
    if text in ("", "[N/A]", "N/A", "[Not Supported]"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def parse_smi_gpu(csv_line: str) -> dict:
    """One `--query-gpu=SMI_FIELDS --format=csv,noheader,nounits` line -> facts (MiB -> bytes)."""
    values = [v.strip() for v in csv_line.strip().split(", ")]
    if len(values) != len(SMI_FIELDS):
        raise ValueError(f"nvidia-smi gave {len(values)} fields, expected {len(SMI_FIELDS)}: {csv_line!r}")
    facts: dict[str, Any] = {"name": values[0], "driver": values[1]}
    for key, value in zip(FACT_KEYS[2:], values[2:]):
        facts[key] = _number(value)
    for key in ("memory_used_bytes", "memory_total_bytes"):
        if isinstance(facts[key], float):
            facts[key] = int(facts[key] * MIB)
    return facts


def parse_smi_apps(csv_text: str) -> list[dict]:
    """`--query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits` -> processes."""
    procs = []
    for line in csv_text.strip().splitlines():
        pid, rest = line.split(", ", 1)
        name, used = rest.rsplit(", ", 1)  # a process name may itself hold ", "
        mib = _number(used)
        procs.append({"pid": int(pid), "name": name.strip(),
                      "used_memory_bytes": int(mib * MIB) if isinstance(mib, float) else None})
    return procs


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=20).stdout


def smi_facts(run: Run = _run, device: str | None = None) -> dict:
    """The facts from nvidia-smi (`run` is replaceable in tests)."""
    dev = device or visible_device()
    gpu = parse_smi_gpu(run(["nvidia-smi", "-i", dev, f"--query-gpu={','.join(SMI_FIELDS)}",
                             "--format=csv,noheader,nounits"]).strip().splitlines()[0])
    apps = parse_smi_apps(run(["nvidia-smi", "-i", dev, "--query-compute-apps=pid,process_name,used_memory",
                               "--format=csv,noheader,nounits"]))
    return {"source": "nvidia-smi", **gpu, "processes": apps}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_facts(nvml: Any, device: str | None = None) -> dict:
    """The facts from NVML (`nvml` is the pynvml module, or a fake in tests)."""
    dev = device or visible_device()
    nvml.nvmlInit()
    try:
        h = nvml.nvmlDeviceGetHandleByIndex(int(dev)) if dev.isdigit() else nvml.nvmlDeviceGetHandleByUUID(dev)
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
        procs = [{"pid": p.pid, "name": _process_name(nvml, p.pid), "used_memory_bytes": p.usedGpuMemory}
                 for p in nvml.nvmlDeviceGetComputeRunningProcesses(h)]
        return {"source": "nvml", "name": _text(nvml.nvmlDeviceGetName(h)),
                "driver": _text(nvml.nvmlSystemGetDriverVersion()),
                "sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
                "sm_clock_max_mhz": nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM),
                "mem_clock_mhz": nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
                "mem_clock_max_mhz": nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM),
                "power_limit_w": nvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0,  # mW
                "power_draw_w": nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                "temperature_c": nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
                "memory_used_bytes": mem.used, "memory_total_bytes": mem.total, "processes": procs}
    finally:
        nvml.nvmlShutdown()


def _process_name(nvml: Any, pid: int) -> str | None:
    try:
        return _text(nvml.nvmlSystemGetProcessName(pid))
    except Exception:  # noqa: BLE001 - another user's process: NVML may refuse its name
        return None


def _mark_others(facts: dict, own_pid: int) -> dict:
    for p in facts.get("processes", []):
        p["this_cell"] = p["pid"] == own_pid
    facts["other_processes"] = sum(not p["this_cell"] for p in facts.get("processes", []))
    return facts


def gpu_facts(nvml: Any = None, run: Run = _run, which: Callable[[str], str | None] = shutil.which) -> dict:
    """NVML if importable, else nvidia-smi if on PATH, else {"source": None, "error": why}; the
    processes marked `this_cell` (this process) and `other_processes` counted."""
    errors = []
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - optional (nvidia-ml-py)
        except ImportError:
            errors.append("pynvml not importable")
    if nvml is not None:
        try:
            return _mark_others(nvml_facts(nvml), os.getpid())
        except Exception as exc:  # noqa: BLE001 - NVML without a driver: try nvidia-smi
            errors.append(f"NVML: {type(exc).__name__}: {exc}"[:200])
    if which("nvidia-smi") is None:
        return {"source": None, "error": "; ".join(errors + ["nvidia-smi not on PATH"])}
    try:
        return _mark_others(smi_facts(run), os.getpid())
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return {"source": None, "error": "; ".join(errors + [f"nvidia-smi: {type(exc).__name__}: {exc}"[:200]])}
