"""The plots: a line per configuration against batch size where several batches were measured,
grouped bars (ours alone, ours beside the reference, the reference) where one was, and the
ours/reference ratios against their bound. Drawn for real (matplotlib Agg), checked on the axes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.container import BarContainer

from resnet_rosetta.benchmarks import plots, results
from bench_records import make_paired, make_record

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The axes of every figure the plots save (their PNGs are still written)."""
    axes: list[Any] = []
    save = plots._save

    def keep(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
        axes.extend(fig.axes)
        save(fig, path)
    monkeypatch.setattr(plots, "_save", keep)
    return axes


def test_one_batch_size_draws_grouped_bars_with_both_sides_of_the_pair(tmp_path: Path, drawn: list[Any]) -> None:
    recs = [make_paired("torch", 10.0, 8.0), make_paired("flax", 12.0, 12.5), make_record("paddle", "ours", 5.0)]
    recs[0]["metrics"].update(img_s_median=6.0, img_s_q25=5.9, img_s_q75=6.1)  # alone, on a busier host
    assert plots.throughput_plots(recs, tmp_path) == ["plot_resnet50_224px_infer_fp32.png"]
    assert (tmp_path / "plot_resnet50_224px_infer_fp32.png").read_bytes()[:8] == PNG
    (ax,) = drawn
    heights = {c.get_label(): c.patches[0].get_height() for c in ax.containers if isinstance(c, BarContainer)}
    assert heights == {"torch eager": 6.0, "torch eager (ours, beside the reference)": 10.0,
                       "torch eager (reference)": 8.0, "paddle eager": 5.0, "flax eager": 12.0,
                       "flax eager (ours, beside the reference)": 12.0, "flax eager (reference)": 12.5}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["torch", "paddle", "flax"]
    assert ax.get_xlabel() == "batch size 16" and ax.get_xscale() == "linear"  # not a line plot at one x


def test_several_batch_sizes_draw_lines_of_ours_alone_and_the_reference(tmp_path: Path, drawn: list[Any]) -> None:
    recs = [make_record("torch", "ours", 10.0, batch=1), make_record("torch", "ours", 20.0, batch=16),
            make_paired("paddle", 5.0, 4.0)]
    plots.throughput_plots(recs, tmp_path)
    (ax,) = drawn
    assert not [c for c in ax.containers if isinstance(c, BarContainer)]
    labels = sorted(c.get_label() for c in ax.containers)
    assert labels == ["paddle eager", "paddle eager (reference)", "torch eager"]  # errorbar containers
    torch_line = next(c for c in ax.containers if c.get_label() == "torch eager")
    assert list(torch_line.lines[0].get_xdata()) == [1, 16] and list(torch_line.lines[0].get_ydata()) == [10.0, 20.0]


def test_ratio_plot_shows_every_measured_ratio_and_the_bound(tmp_path: Path, drawn: list[Any]) -> None:
    recs = [make_paired("torch", 10.0, 11.0), make_paired("paddle", 5.0, 5.0),
            make_paired("flax", 12.0, 0, pair_status="error")]
    ratios = results.derive(recs)["ratios"]
    assert plots.ratio_plot(ratios, results.RATIO_BOUND, tmp_path) == ["plot_ratios.png"]
    assert (tmp_path / "plot_ratios.png").read_bytes()[:8] == PNG
    (ax,) = drawn
    points = sorted(float(c.lines[0].get_xdata()[0]) for c in ax.containers)
    assert points == pytest.approx([10.0 / 11.0, 1.0])  # the failed pair has no point
    bound = [ln for ln in ax.lines if ln.get_label() == f"bound {results.RATIO_BOUND:g}"]
    assert len(bound) == 1 and list(bound[0].get_xdata()) == [results.RATIO_BOUND] * 2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["resnet50 infer b16 torch eager",
                                                            "resnet50 infer b16 paddle eager"]


def test_no_measured_ratio_draws_no_ratio_plot(tmp_path: Path) -> None:
    ratios = results.derive([make_paired("flax", 12.0, 0, pair_status="error")])["ratios"]
    assert plots.ratio_plot(ratios, results.RATIO_BOUND, tmp_path) == []
    assert not (tmp_path / "plot_ratios.png").exists()
