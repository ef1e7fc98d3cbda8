"""The one description of this host (CPU model, vendor, SIMD flags, cores, memory) used by parity,
the benchmarks and the guide, and the readings that tell how busy it is (RSS, CPU steal), plus the
thread settings applied to every framework process.

Standard library only: safe to import in the parent before any framework.
"""
from __future__ import annotations

import glob
import os
import platform
import re
import resource
import shutil
import sys

# SIMD / matrix flags that decide fp32 and bf16 speed; the rest of /proc/cpuinfo is noise here.
_FLAG_PATTERN = re.compile(r"^(sse4_2|avx|avx2|fma|f16c|avx512.*|amx.*|avx_vnni.*|avx_bf16.*|avx_ne_convert)$")

# Environment variables that size the thread pools of the BLAS / OpenMP / oneDNN libraries behind
# every framework; set identically for every cell before its framework is imported.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")


def cpu_info() -> dict:
    """CPU model, vendor, the SIMD flags that matter for fp32 / bf16 speed, core count, bf16 support."""
    model, flags, vendor = platform.processor() or "unknown", [], None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("unknown", "", "x86_64"):
                    model = value.strip()
                elif key == "vendor_id" and vendor is None:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = value.split()
    except OSError:
        pass
    simd = sorted(f for f in flags if _FLAG_PATTERN.match(f))
    return {"cpu_model": model, "cpu_vendor": vendor, "cpu_flags": simd, "cpu_count": os.cpu_count(),
            "bf16_hw": any(f in flags for f in ("avx512_bf16", "amx_bf16", "avx_ne_convert"))}


def mkl_env(policy: str = "auto") -> dict[str, str]:
    """On AMD CPUs, MKL (inside torch and Paddle) dispatches to a generic slow path unless told
    `MKL_DEBUG_CPU_TYPE=5` (use the AVX2 kernels; the speed-up measured: docs/benchmarks.md).
    "auto" sets it on AMD unless the user already chose a value; "off" never."""
    if policy == "off" or "MKL_DEBUG_CPU_TYPE" in os.environ or cpu_info()["cpu_vendor"] != "AuthenticAMD":
        return {}
    return {"MKL_DEBUG_CPU_TYPE": "5"}


def machine_has_gpu() -> bool:
    """An NVIDIA device node or nvidia-smi: without either no framework can see a CUDA GPU (a cheap
    check before any framework is started)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def memory_total_bytes() -> int | None:
    return _meminfo("MemTotal")


def memory_available_bytes() -> int | None:
    return _meminfo("MemAvailable")


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def describe() -> str:
    """One line naming the machine, e.g. 'AMD EPYC, 2 cores (x86_64)': what every figure is recorded with."""
    info = cpu_info()
    return f"{info['cpu_model']}, {info['cpu_count']} cores ({platform.machine()})"


def host_info() -> dict:
    return {"hostname": platform.node(), "os": platform.platform(), "python": sys.version.split()[0],
            "memory_total_bytes": memory_total_bytes(), **cpu_info()}


def thread_env(threads: int) -> dict[str, str]:
    env = {k: str(threads) for k in THREAD_VARS}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["GLOG_minloglevel"] = "2"
    return env


def pin_threads(threads: int) -> list[int]:
    """Restrict this process to `threads` cores: the one knob every framework honours.

    XLA sizes its CPU thread pool from the affinity mask; torch and Paddle are also told through
    their own APIs by the runners. Returns the cores used.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)
        return cpus
    except (AttributeError, OSError):
        return []


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def group_rss_bytes(pgid: int) -> int:
    """Resident bytes of every process in process group `pgid` (the cell and anything it spawned)."""
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{entry}/statm", encoding="utf-8") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_jiffies() -> tuple[int, int] | None:
    """(steal, total) clock ticks of all CPUs so far, from /proc/stat; None where it is not readable.
    Steal is time the hypervisor ran something else while this VM wanted the CPU."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_fraction(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Share of the CPU time between two `cpu_jiffies` readings that the hypervisor took away."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
