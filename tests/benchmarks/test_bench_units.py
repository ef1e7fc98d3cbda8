"""The benchmark's parts without a framework: timer protocol, statistics, planning, derived figures,
Markdown, output-folder safety. Fast: no subprocess, no framework import."""
from __future__ import annotations

import json

import pytest

from resnet_rosetta.benchmarks import config, pipeline, report_index, report_md, results, timing
from resnet_rosetta.benchmarks.config import Cell
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.counting import macs
from resnet_rosetta.common.spec import get_spec
from bench_records import make_paired, make_peak, make_record


class FakeDevice:
    """An asynchronous in-order device running named workloads: a step only queues work and returns
    its handle; `sync(handles)` waits for the given handles (and all work queued before them), as
    `jax.block_until_ready` does, and the clock may be read only when nothing is queued. A timer that
    forgets to hand over a step's output reads the clock with work still queued, and fails. With
    `drift`, every step costs more the later it runs (a host slowing down), the case ABBA exists for."""

    def __init__(self, cost: dict[str, float], drift: float = 0.0) -> None:
        self.now, self.cost, self.drift, self.events = 0.0, cost, drift, []
        self.queue: list[tuple[tuple[str, int], float]] = []  # (handle, cost), in issue order
        self.issued = 0

    def stepper(self, name: str):
        def step():
            self.issued += 1
            handle = (name, self.issued)
            self.queue.append((handle, self.cost[name] * (1 + self.drift * self.now)))
            self.events.append(name)
            return handle
        return step

    def sync(self, handles):
        given = set(handles)
        last = max((i for i, (h, _) in enumerate(self.queue) if h in given), default=-1)
        self.now += sum(cost for _, cost in self.queue[:last + 1])
        del self.queue[:last + 1]
        self.events.append("sync")

    def clock(self):
        assert not self.queue, "clock read while steps were still queued on the device"
        self.events.append("clock")
        return self.now


def test_timer_syncs_before_every_clock_read_and_excludes_first_call_and_warmup():
    dev = FakeDevice({"step": 0.25})
    t = timing.measure(dev.stepper("step"), dev.sync, warmup=2, iters=4, repeats=3, clock=dev.clock)
    assert t.first_call_s == pytest.approx(0.25)
    assert t.repeat_s == pytest.approx([1.0, 1.0, 1.0])  # 4 steps x 0.25 s, warm-up not counted
    assert dev.events.count("step") == 1 + 2 + 3 * 4
    for i, e in enumerate(dev.events):
        if e == "clock" and i > 0:
            assert dev.events[i - 1] == "sync"


def test_a_timer_that_does_not_wait_for_the_steps_output_fails(monkeypatch: pytest.MonkeyPatch):
    def forgetful(step, now, iters):  # syncs, but on no handle: the queued steps are not waited for
        t0 = now()
        for _ in range(iters):
            step()
        return now() - t0

    dev = FakeDevice({"step": 0.25})
    assert dev.sync([]) is None and dev.clock() == 0.0  # nothing queued: a sync on no handle is fine
    monkeypatch.setattr(timing, "_one_repeat", forgetful)
    with pytest.raises(AssertionError, match="still queued"):
        timing.measure(dev.stepper("step"), dev.sync, warmup=1, iters=4, repeats=2, clock=dev.clock)


def test_auto_iters_targets_the_repeat_time():
    dev = FakeDevice({"step": 0.1})
    t = timing.measure(dev.stepper("step"), dev.sync, warmup=1, iters=0, repeats=2, target_repeat_s=1.0,
                       clock=dev.clock)
    assert t.iters == 10
    slow = FakeDevice({"step": 5.0})
    assert timing.measure(slow.stepper("step"), slow.sync, warmup=1, iters=0, repeats=1, clock=slow.clock).iters == 1


def test_interleave_alternates_abba_with_equal_steps_and_syncs_before_every_clock_read():
    m = FakeDevice({"a": 0.1, "b": 0.2})
    a, b = (m.stepper("a"), m.sync), (m.stepper("b"), m.sync)
    first, warm, fastest = timing.warm_up(*b, warmup=1, clock=m.clock)
    assert (first, warm, fastest) == pytest.approx((0.2, 0.2, 0.2))
    m.events.clear()
    a_s, b_s = timing.interleave(a, b, iters=5, rounds=4, clock=m.clock)
    runs = [e for i, e in enumerate(m.events) if e in "ab" and (i == 0 or m.events[i - 1] != e)]
    assert "".join(runs) == "abbaabba" and m.events.count("a") == m.events.count("b") == 4 * 5
    assert all(m.events[i - 1] == "sync" for i, e in enumerate(m.events) if e == "clock" and i > 0)
    assert a_s == pytest.approx([0.5] * 4) and b_s == pytest.approx([1.0] * 4)
    r = timing.summarize_ratio(a_s, b_s)
    assert r["median"] == pytest.approx(2.0) and len(r["per_round"]) == 4  # a runs twice as fast


def test_pair_ratio_of_identical_models_stays_one_on_a_drifting_machine():
    m = FakeDevice({"a": 0.1, "b": 0.1}, drift=0.05)
    a, b = (m.stepper("a"), m.sync), (m.stepper("b"), m.sync)
    ratio = timing.summarize_ratio(*timing.interleave(a, b, iters=5, rounds=6, clock=m.clock))
    assert abs(ratio["median"] - 1) < 0.01  # the per-round ratios cancel the drift ...
    assert ratio["q25"] < 1 < ratio["q75"]  # ... alternately favouring each side
    seq_a = timing.measure(*a, warmup=0, iters=5, repeats=6, clock=m.clock)
    seq_b = timing.measure(*b, warmup=0, iters=5, repeats=6, clock=m.clock)
    assert timing.summarize_ratio(seq_a.repeat_s, seq_b.repeat_s)["median"] > 1.05  # back to back: biased


def test_summary_median_iqr_and_gflops():
    t = timing.Timings(first_call_s=9.0, warmup_s=1.0, repeat_s=[1.0, 2.0, 4.0, 1.0, 2.0], iters=2)
    s = timing.summarize(t, batch=8, flops_per_image=10**9)
    # img/s per repeat: 16, 8, 4, 16, 8 -> median 8, q25 8, q75 16
    assert s["img_s_median"] == pytest.approx(8.0)
    assert (s["img_s_q25"], s["img_s_q75"]) == pytest.approx((8.0, 16.0))
    assert s["spread"] == pytest.approx(1.0)
    assert s["ms_step_median"] == pytest.approx(1000.0)
    assert s["gflop_s"] == pytest.approx(8.0)
    assert s["first_call_s"] == 9.0


def test_flops_count_training_as_three_forwards():
    c = Cell(framework="torch", arch="resnet50", size=224)
    assert c.flops_per_image() == 2 * macs(get_spec("resnet50"), 224)
    assert Cell(framework="torch", arch="resnet50", mode="train").flops_per_image() == 3 * c.flops_per_image()


def test_expand_pairs_each_fp32_cell_with_its_reference_and_resolves_default_exec():
    cells = config.expand(["resnet18", "resnet18_small"], ["torch", "flax"], ["infer"], [2], ["fp32", "bf16"],
                          ["default"], channels_last=True, repeats=5)
    nhwc = config.expand(["resnet18"], ["paddle"], ["infer"], [2], ["fp32"], ["eager"], channels_last=True)
    assert [(c.channels_last, c.with_reference, c.layout) for c in nhwc] == [(True, False, "NHWC (data_format)")]
    labels = [c.label for c in cells]
    assert "resnet18 flax/ours+reference infer b2 fp32 compiled 224px" in labels  # JAX's usual mode is jit
    assert "resnet18 torch/ours+reference infer b2 fp32 eager channels_last 224px" in labels
    assert "resnet18 torch/ours infer b2 bf16 eager channels_last 224px" in labels
    paired = [c for c in cells if c.with_reference]
    assert len(paired) == 2 and all(c.precision == "fp32" and c.arch == "resnet18" for c in paired)  # no zoo _small
    assert all(c.impl == "ours" for c in cells) and len(cells) == 8
    assert not any(c.channels_last for c in cells if c.framework == "flax")
    assert {c.pair_rounds for c in paired} == {6}  # as many as the repeats, rounded up to even: ABBA balanced
    more = config.expand(["resnet18"], ["torch"], ["infer"], [2], ["fp32"], ["eager"], repeats=5, rounds=11)
    assert more[0].pair_rounds == 12 and more[0].repeats == 5


@pytest.mark.parametrize("parse, value", [(config.parse_archs, "resnet19"), (config.parse_frameworks, "tensorflow"),
                                          (config.parse_modes, "eval"), (config.parse_precisions, "fp16"),
                                          (config.parse_execs, "jit")])
def test_unknown_names_are_user_errors_that_list_the_choices(parse, value):
    with pytest.raises(UserError, match=f"{value!r}.*known"):
        parse(value)


def test_cell_roundtrips_through_json():
    c = Cell(framework="paddle", arch="resnet50", impl="reference", mode="train", batch=4, precision="bf16",
             execution="compiled", threads=2)
    assert Cell.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_derived_peaks_fractions_ratios_and_best():
    recs = [make_peak("torch", 200.0, 1.0), make_peak("flax", 150.0, 120.0),
            make_paired("torch", 10.0, 10.0, round_ratios=[0.93, 0.95, 0.96, 1.05]), make_paired("paddle", 5.0, 5.0),
            make_paired("flax", 12.0, 0, pair_status="error"), make_paired("flax", 0, 0, status="oom")]
    recs[-1]["cell"]["batch"] = 64
    d = results.derive(recs)
    assert d["peaks"]["fp32"]["gflop_s"] == 200.0 and d["peaks"]["bf16"]["by"] == "flax"
    assert recs[2]["metrics"]["peak_fraction"] == pytest.approx(10.0 * 8.2 / 200.0)
    assert recs[2]["metrics"]["pair"]["reference"]["peak_fraction"] == pytest.approx(10.0 * 8.2 / 200.0)
    by_fw = {(r["cell"]["framework"], r["cell"]["batch"]): r for r in d["ratios"]}
    # the median of the round ratios, not the ratio of the medians (1.0 here)
    torch_row = by_fw[("torch", 16)]
    assert torch_row["ratio"] == pytest.approx(0.955) and torch_row["passed"] is False
    assert results.within_noise(torch_row)  # its upper quartile over the rounds reaches 0.97
    assert by_fw[("paddle", 16)]["passed"] is True
    assert not results.within_noise({**by_fw[("paddle", 16)], "ratio_q75": 0.96})
    assert by_fw[("flax", 16)]["ratio"] is None and by_fw[("flax", 16)]["status"] == "error"
    assert by_fw[("flax", 64)]["status"] == "oom" and by_fw[("flax", 64)]["message"] == "our model: boom"
    assert d["best"][("resnet50", "infer")]["flax"] is recs[4]  # our model's own figures survive the pair's error
    rows = {r["cell"]["framework"]: r for r in results.paired_reference_rows(recs)}
    assert set(rows) == {"torch", "paddle"} and rows["torch"]["cell"]["impl"] == "reference" and rows["torch"]["paired"]
    assert rows["torch"]["model"] == "torchvision.models" and rows["paddle"]["model"] == "paddle.vision.models"
    ours = {r["cell"]["framework"]: r for r in results.paired_rows(recs, "ours")}
    assert ours["torch"]["model"] == "frameworks/torch/model.py" and ours["torch"]["metrics"]["img_s_median"] == 10.0


def test_markdown_marks_the_fastest_and_lists_failures():
    recs = [make_paired("torch", 10.0, 11.0), make_paired("paddle", 5.0, 0, pair_status="oom"), make_record("flax", "ours", 12.0),
            make_record("flax", "ours", 0, status="oom", batch=64)]
    d = results.derive(recs)
    text = report_md.bench_markdown(recs, d, {"command": "test"}, [])
    table = text.split("### resnet50 infer (224x224)")[1].split("\n\n")[1]
    starred = [ln for ln in table.splitlines() if "★" in ln]
    assert len(starred) == 1 and starred[0].startswith("| **flax**")
    assert "| torch | torchvision (paired) | eager |" in table  # the reference side of the pair
    assert "| oom | boom |" in text  # the failure, with its message
    ratio_rows = text.split("bound: ratio >= 0.97")[1].split("\n## ")[0]
    assert "| 10 | 11 | 0.909 | 0.909-0.909 | 4 | 0.2% | **below bound** |" in ratio_rows
    assert "not measured (oom: boom)" in ratio_rows
    assert "| paddle.vision (beside ours) | infer | 16 | fp32 | eager | cpu | oom | boom |" in text  # under failures
    assert pipeline.exit_code(recs[:2], interrupted=False) == 1  # a failed reference fails the sweep
    assert pipeline.exit_code(recs[:1], interrupted=False) == 0
    csv_text = results.to_csv(recs)
    assert csv_text.splitlines()[0].startswith("status,kind,arch,framework")
    assert len(csv_text.splitlines()) == 1 + len(recs)


def test_index_summary_states_parity_and_bounds():
    recs = [make_peak("torch", 100.0, 50.0, noise_spread=0.031), make_paired("torch", 7.0, 7.0),
            make_paired("paddle", 5.0, 5.0, round_ratios=[0.9, 0.92, 0.95, 1.0])]
    d = results.derive(recs)
    parity = {"status": "failed", "doc": {"passed": False, "checks": [
        {"passed": True, "status": "pass"}, {"passed": False, "status": "FAIL"},
        {"passed": True, "status": "conditioning-limited"}, {"passed": True}]},
              "markdown": "# Parity report\n\n## resnet18 · eval\n\n```\n# not a heading\n```\n"}
    text = report_index.index_markdown(meta={"command": "x"}, plan_measures=["m"], plan_skips=["s"], records=recs,
                                       derived=d, parity=parity, list_text="resnet18", files=["results.csv"])
    assert "**Benchmarks on:** cpu." in text
    assert ("**Parity (on the CPU):** **FAIL**: 2 of 4 comparisons within tolerance, 1 FAIL, 1 conditioning-limited "
            "(conditioning-limited: explained by fp32 itself, see parity.md).") in text
    assert "### Parity report" in text and "#### resnet18 · eval" in text and "\n# not a heading" in text
    assert "57.4% of the measured fp32 matmul peak" in text and "bound 50%: met" in text
    assert ("the host's own floor, a fixed 1024^3 fp32 matmul loop timed the same way in the probe cells: "
            "IQR/median 3.1% (torch).") in text
    assert "| torch | 1024 | 5 x 80 | 90 | 3.1% |" in text  # the probe's noise loop, beside the peaks
    # paddle: the median of its round ratios is 0.935 and their upper quartile 0.9625: not within noise
    assert ("**Ours vs reference:** 1 of 2 measured pairs at or above 0.97 (ratios 0.935 to 1.000); below: "
            "resnet50 paddle infer 0.935.") in text


def test_output_folder_is_refused_or_overwritten_only_if_ours(tmp_path):
    out = tmp_path / "res"
    pipeline.prepare_out_dir(out, overwrite=False)
    (out / "results.jsonl").write_text("old\n")
    with pytest.raises(UserError, match="already exists.*--overwrite"):
        pipeline.prepare_out_dir(out, overwrite=False)
    assert (out / "results.jsonl").read_text() == "old\n"
    pipeline.prepare_out_dir(out, overwrite=True)
    assert not (out / "results.jsonl").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not written by resnet-rosetta"):
        pipeline.prepare_out_dir(foreign, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_missing_framework_is_an_error_when_named_and_a_note_otherwise(monkeypatch):
    monkeypatch.setattr(pipeline, "missing_modules", lambda fw: ["paddle"] if fw == "paddle" else [])
    with pytest.raises(UserError, match="paddle is not installed"):
        pipeline.check_frameworks(["torch", "paddle"], explicit=True)
    usable, notes = pipeline.check_frameworks(["torch", "paddle"], explicit=False)
    assert usable == ["torch"] and "paddle skipped" in notes[0]
