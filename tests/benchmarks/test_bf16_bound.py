"""The CPU bf16 bound and the steadiness rule, on hand-built records: the best resnet50 bf16 inference
cell at batch 16 against the machine's bf16 matmul peak (met / not met / not measured, not applicable
without bf16 instructions), a cell "steady" within max(5%, 1.5 x the host's floor), and the CPU plans
that measure the bound's cell."""
from __future__ import annotations

from dataclasses import replace

import pytest

from resnet_rosetta.benchmarks import report_index, results
from resnet_rosetta.benchmarks.config import Cell
from resnet_rosetta.benchmarks.presets import build_plan

from bench_records import make_peak, make_record

FWS = ["torch", "paddle", "flax"]


def _bf16(fw: str, img_s: float, *, arch: str = "resnet50", batch: int = 16, hw: bool | None = True) -> dict:
    rec = make_record(fw, "ours", img_s, arch=arch, precision="bf16", batch=batch)
    cell = Cell.from_dict(rec["cell"])
    rec["cell"] = replace(cell, execution="compiled", channels_last=fw == "torch").to_dict()
    if hw is not None:
        rec["env"]["bf16_hw"] = hw
    return rec


def _bf16_line(records: list[dict]) -> str:
    derived = results.derive(records)
    return next(x for x in report_index.summary_lines(records, derived, {"status": "skipped"}) if x.startswith("**bf16"))


@pytest.mark.parametrize("torch_gflop_s,verdict", [(600.0, "met (60.0%"), (400.0, "not met (40.0%")])
def test_the_bound_is_judged_on_resnet50_at_batch_16_against_the_best_bf16_peak(torch_gflop_s: float,
                                                                                verdict: str) -> None:
    # the peak is the machine's: the best bf16 probe of any framework (flax's 1000 here, not torch's 500)
    records = [make_peak("torch", 200.0, 500.0), make_peak("flax", 150.0, 1000.0),
               _bf16("torch", torch_gflop_s / 8.2), _bf16("flax", 300.0 / 8.2),
               _bf16("torch", 900.0 / 8.2, arch="resnet18", batch=1)]  # a higher fraction, but not the bound's cell
    line = _bf16_line(records)
    assert f"bound 50% on resnet50 inference at batch 16: {verdict}, torch resnet50 infer b16 compiled" in line
    assert "3 of 3 cells measured; best torch resnet18 infer b1 compiled NHWC (channels_last): 90.0%" in line


def test_without_bf16_instructions_the_bound_does_not_apply_and_without_its_cell_it_is_not_measured() -> None:
    peaks = [make_peak("torch", 200.0, 20.0)]
    line = _bf16_line(peaks + [_bf16("torch", 30.0 / 8.2, hw=False)])
    assert "no bf16 instructions" in line and "bound 50% on resnet50 inference at batch 16: not applicable" in line
    line = _bf16_line(peaks + [_bf16("torch", 30.0 / 8.2, arch="resnet18", batch=1)])
    assert line.endswith("bound 50% on resnet50 inference at batch 16: not measured (no such cell ran).")


@pytest.mark.parametrize("floors,limit", [((), 0.05), ((0.01,), 0.05), ((0.02, 0.08, 0.10), 0.12)])
def test_steady_means_within_five_percent_or_one_and_a_half_host_floors(floors: tuple[float, ...],
                                                                         limit: float) -> None:
    peaks = [make_peak(fw, 200.0, 400.0, noise_spread=f) for fw, f in zip(FWS, floors)]
    cells = [make_record("torch", "ours", 10.0, spread=s) for s in (0.04, 0.11, 0.13)]
    derived = results.derive(peaks + cells)
    assert derived["steady_limit"] == pytest.approx(limit)
    assert [c["metrics"]["steady"] for c in cells] == [s <= limit for s in (0.04, 0.11, 0.13)]
    line = next(x for x in report_index.summary_lines(peaks + cells, derived, {"status": "skipped"})
                if x.startswith("**Repeatability"))
    steady = sum(s <= limit for s in (0.04, 0.11, 0.13))
    assert line.startswith(f"**Repeatability:** {steady} of 3 cells steady (IQR/median <= {limit:.1%} = max(5%, 1.5 x")


def test_cpu_plans_measure_the_bound_cell_in_torchs_bf16_recipe() -> None:
    default = build_plan("default", FWS, threads=2)
    bound = [c for c in default.cells if (c.arch, c.mode, c.batch, c.precision) == ("resnet50", "infer", 16, "bf16")]
    assert [(c.framework, c.execution, c.channels_last, c.with_reference) for c in bound] == [
        ("torch", "compiled", True, False)]
    assert default.cells.index(bound[0]) < min(i for i, c in enumerate(default.cells) if c.mode == "train")
    full_bf16 = [c for c in build_plan("full", FWS, threads=2).cells if c.precision == "bf16"]
    assert {c.channels_last for c in full_bf16 if c.framework in ("torch", "paddle")} == {True}
    assert not any(c.channels_last for c in full_bf16 if c.framework == "flax")
    assert not any(c.with_reference for c in full_bf16 if c.framework == "paddle")  # paddle.vision: NCHW only
    gpu = build_plan("default", FWS, threads=2, device="gpu")
    assert not [c for c in gpu.cells if c.precision == "bf16" and c.batch == 16]
