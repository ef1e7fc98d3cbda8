"""Bad `bench --devices N` options (data-parallel throughput); appended to `bad_cases.CASES`."""
from __future__ import annotations

from bad_cases import BENCH, CASES, Case, _options

BENCH_DP = [*BENCH, "--device", "cpu", "--mode", "train"]
for _extra, _expect in [
    (["--devices", "0"], "--devices: expected an integer in [1, 4096], found 0"),
    (["--threads", "1", "--devices", "2"], "--devices 2 needs a thread per replica on the CPU; the sweep has 1"),
    (["--devices", "2", "--mode", "infer,train"], "--devices 2 measures data-parallel training only: pass --mode train"),
]:
    CASES.append(Case(f"option-bench{''.join(_extra)}", "options", f"`bench --device cpu {' '.join(_extra)}`",
                      _options([*BENCH_DP, *_extra], "--out", "results"), _expect))
