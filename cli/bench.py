"""`resnet-rosetta bench`: throughput of every framework, training and inference, eager and compiled,
fp32 and bf16, each (framework x configuration) cell in a fresh process.

Writes to --out: results.jsonl (one record per cell, environment included), results.csv,
summary.json, report.md (tables, ours/reference ratios, fastest marked) and PNG plots.
"""
from __future__ import annotations

import argparse
import sys

from resnet_rosetta.common.options import integer, number


def add_sweep_arguments(p: argparse.ArgumentParser, defaults: dict) -> None:
    """The sweep options shared by `bench` and `report` (report changes some defaults)."""
    from resnet_rosetta.benchmarks.config import FRAMEWORKS, REFERENCE_POLICIES
    p.add_argument("--arch", default=defaults.get("arch", "resnet18,resnet50"),
                   help="comma-separated presets (default %(default)s)")
    p.add_argument("--frameworks", default=None,
                   help=f"comma-separated, from {','.join(FRAMEWORKS)} (default: every installed one)")
    p.add_argument("--mode", default=defaults.get("mode", "infer,train"), help="infer,train (default %(default)s)")
    p.add_argument("--batch", default=defaults.get("batch", "16"), help="comma-separated batch sizes (default %(default)s)")
    p.add_argument("--precision", default=defaults.get("precision", "fp32"), help="fp32,bf16 (default %(default)s)")
    p.add_argument("--exec", dest="exec_modes", default=defaults.get("exec", "default"),
                   help="eager,compiled,default; default = each framework's usual mode: torch eager, "
                        "Paddle dygraph, JAX jit (default %(default)s)")
    p.add_argument("--channels-last", action="store_true",
                   help="torch cells in channels_last memory format, Paddle's with data_format NHWC (our model "
                        "only: paddle.vision's is NCHW)")
    p.add_argument("--size", type=integer("--size", 16, 8192), default=224, help="input height and width (default %(default)s)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                   help="auto: the GPU when any framework sees one, else the CPU; frameworks that cannot see "
                        "the device are left out with a note (default %(default)s)")
    p.add_argument("--plan", action="store_true",
                   help="print the device, probes, cells and budget that would run, and exit (measures nothing)")
    p.add_argument("--mkl-amd", default="auto", choices=("auto", "off"),
                   help="auto: on AMD CPUs set MKL_DEBUG_CPU_TYPE=5 for every cell, so MKL inside torch and "
                        "Paddle uses its AVX2 kernels instead of a generic slow path (default %(default)s)")
    p.add_argument("--tf32", default="default", choices=("default", "off"),
                   help="GPU fp32 math: each framework's default (TF32 on Ampere+ in cuDNN convs for torch, "
                        "in Paddle and JAX), or off everywhere via NVIDIA_TF32_OVERRIDE=0 (default %(default)s)")
    p.add_argument("--warmup", type=integer("--warmup", 0, 10**6), default=defaults.get("warmup", 2),
                   help="warm-up steps after the first call (default %(default)s)")
    p.add_argument("--iters", type=integer("--iters", 0, 10**9), default=0,
                   help="timed steps per repeat; 0 = auto, about --repeat-s seconds per repeat (default 0)")
    p.add_argument("--repeat-s", type=number("--repeat-s", 0, 86400, low_open=True), default=defaults.get("repeat_s", 1.0),
                   help="target seconds per repeat when --iters is 0 (default %(default)s)")
    p.add_argument("--repeats", type=integer("--repeats", 1, 10**6), default=defaults.get("repeats", 5),
                   help="repeats; median and IQR are taken over them (default %(default)s)")
    p.add_argument("--rounds", type=integer("--rounds", 1, 10**6), default=defaults.get("rounds", 20),
                   help="ABBA rounds of each ours/reference pair, rounded up to even; the ratio is their median "
                        "(default %(default)s: about +-1.5%% of noise on a noisy 2-core VM)")
    p.add_argument("--threads", type=integer("--threads", 1, 4096), default=None, help="threads per cell (default: every core this process may use)")
    p.add_argument("--reference", default="fp32", choices=REFERENCE_POLICIES,
                   help="which cells also time the framework's reference model beside ours, interleaved ABBA "
                        "in the same process (the ours/reference ratio): every fp32 cell, every cell, or none "
                        "(default %(default)s)")
    p.add_argument("--no-peak", action="store_true", help="skip the matmul peak probe")
    p.add_argument("--timeout", type=number("--timeout", 0, 10**7, low_open=True), default=defaults.get("timeout", 900.0),
                   help="seconds per cell before it is killed and recorded as timeout (default %(default)s)")
    p.add_argument("--mem-limit", type=number("--mem-limit", 0, 10**6, low_open=True), default=None,
                   help="GiB of resident memory per cell before it is killed and recorded as oom "
                        "(default: 90%% of the memory available at start)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder written by resnet-rosetta")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="throughput benchmark sweep, one fresh process per cell",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(p, {})
    p.add_argument("--devices", type=integer("--devices", 1, 4096), default=1,
                   help="data-parallel training on N replicas, --batch per replica (CPU: N processes or JAX host "
                        "devices sharing the cores, threads split evenly; GPU: N GPUs), timed against one device "
                        "in the same run (default %(default)s)")
    p.add_argument("--out", default="bench-results", help="output folder (default %(default)s); must not exist "
                                                         "unless --overwrite")
    return p


def run(args: argparse.Namespace) -> int:
    from resnet_rosetta.benchmarks.bench import run_bench
    return run_bench(args, sys.argv[1:])
