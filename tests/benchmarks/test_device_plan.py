"""`--device auto|cpu|gpu` and `--plan` of `bench` and `report`, on fakes of what each framework sees:
the device chosen, who is left out (not started, not budgeted), the GPU plan pinned, and `--device
gpu` without a GPU refused in one line with nothing measured. No framework is started."""
from __future__ import annotations

import pytest

from resnet_rosetta.benchmarks import report
from resnet_rosetta.benchmarks.plan import report_plan
from resnet_rosetta.cli.main import build_parser, main
from resnet_rosetta.frameworks import devices
from resnet_rosetta.frameworks.devices import Sight

H200 = Sight(count=1, build="CUDA 13.0", name="NVIDIA H200")
CPU_ONLY = Sight()

# `report --device gpu` at the default level: the cells in the order they run (pinned: a change to
# the GPU plan is a decision, made here on purpose).
GPU_DEFAULT_PLAN = """\
report plan on gpu: torch, paddle, flax; 3 probes, 19 cells; budget 14.5 min (no cell starts after it)
parity: resnet-rosetta parity --device gpu --frameworks torch,paddle,flax
probe: matmul peak probe (torch, gpu)
probe: matmul peak probe (paddle, gpu)
probe: matmul peak probe (flax, gpu)
cell: resnet18 torch/ours+reference infer b128 fp32 eager 224px
cell: resnet18 paddle/ours+reference infer b128 fp32 eager 224px
cell: resnet18 flax/ours+reference infer b128 fp32 compiled 224px
cell: resnet50 torch/ours+reference infer b128 fp32 eager 224px
cell: resnet50 paddle/ours+reference infer b128 fp32 eager 224px
cell: resnet50 flax/ours+reference infer b128 fp32 compiled 224px
cell: resnet50 torch/ours infer b256 fp32 compiled 224px
cell: resnet50 paddle/ours infer b256 fp32 compiled 224px
cell: resnet50 flax/ours infer b256 fp32 compiled 224px
cell: resnet50 torch/ours infer b256 fp32 eager channels_last 224px
cell: resnet50 torch/ours infer b256 bf16 eager channels_last 224px
cell: resnet50 paddle/ours infer b256 bf16 eager channels_last 224px
cell: resnet50 flax/ours infer b256 bf16 compiled 224px
cell: resnet18 torch/ours+reference train b64 fp32 eager 224px
cell: resnet18 paddle/ours+reference train b64 fp32 eager 224px
cell: resnet18 flax/ours+reference train b64 fp32 compiled 224px
cell: resnet50 torch/ours+reference train b64 fp32 eager 224px
cell: resnet50 paddle/ours+reference train b64 fp32 eager 224px
cell: resnet50 flax/ours+reference train b64 fp32 compiled 224px
"""


@pytest.fixture
def sees(monkeypatch):
    """Fake what each framework sees: `sees(torch=H200, ...)`; frameworks not named see no GPU."""
    def install(**sights: Sight) -> None:
        monkeypatch.setattr(devices, "probe", lambda fws, **kw: {fw: sights.get(fw, CPU_ONLY) for fw in fws})
    return install


def _fake_install(monkeypatch):
    """Every framework counts as installed: the plan does not depend on this machine's packages."""
    monkeypatch.setattr("resnet_rosetta.benchmarks.pipeline.missing_modules", lambda fw: [])


def test_the_gpu_plan_is_pinned_and_printed_without_a_gpu(monkeypatch, capsys, tmp_path):
    _fake_install(monkeypatch)
    monkeypatch.setattr(devices, "machine_has_gpu", lambda: False)  # no GPU here: planned all the same
    out = tmp_path / "report"
    code = main(["report", "--plan", "--device", "gpu", "--frameworks", "torch,paddle,flax", "--threads", "1",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists()  # nothing measured, nothing written
    assert "\n".join(ln for ln in printed.splitlines() if not ln.startswith("note: ")) + "\n" == GPU_DEFAULT_PLAN
    assert "note: planned for a GPU this machine does not have (torch, paddle, flax: no NVIDIA device" in printed


def test_bench_plan_lists_probes_and_cells_for_the_device_chosen(monkeypatch, capsys, sees):
    _fake_install(monkeypatch)
    sees(torch=H200, flax=H200)
    code = main(["bench", "--plan", "--arch", "resnet18", "--mode", "infer", "--threads", "1"])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    assert printed[0] == ("bench plan on gpu: torch, flax; 2 probes, 2 cells; budget none: every cell runs "
                          "(each stopped after --timeout)")
    assert printed[1] == "note: --device auto: the GPU (torch, flax see it)"
    assert printed[2] == "note: paddle left out (not started, not budgeted): it sees no GPU (CPU-only build)"
    assert printed[3:] == ["probe: matmul peak probe (torch, gpu)", "probe: matmul peak probe (flax, gpu)",
                           "cell: resnet18 torch/ours+reference infer b16 fp32 eager 224px",
                           "cell: resnet18 flax/ours+reference infer b16 fp32 compiled 224px"]


def test_auto_plans_every_cell_and_probe_on_the_device_it_chose(monkeypatch, sees):
    _fake_install(monkeypatch)
    sees(paddle=H200)
    args = build_parser().parse_args(["report", "--threads", "1"])
    plan, frameworks, _, notes = report_plan(args, "default")
    assert args.device == "gpu" and frameworks == ["paddle"]
    assert {(c.framework, c.device) for c in plan.cells + plan.probes} == {("paddle", "gpu")}
    assert [n.split(" (")[0] for n in notes] == ["--device auto: the GPU", "torch left out", "flax left out"]
    sees()  # nobody sees a GPU: the CPU, everyone
    args = build_parser().parse_args(["report", "--threads", "1"])
    plan, frameworks, _, _ = report_plan(args, "quick")
    assert args.device == "cpu" and frameworks == ["torch", "paddle", "flax"]
    assert {c.device for c in plan.cells + plan.probes} == {"cpu"}


@pytest.mark.parametrize("command", ["bench", "report"])
def test_gpu_without_one_is_one_line_naming_each_framework_and_measures_nothing(monkeypatch, capsys, sees, tmp_path,
                                                                                 command):
    _fake_install(monkeypatch)
    sees(torch=Sight(build="CUDA 13.0", error="Found no NVIDIA driver on your system."))
    monkeypatch.setattr(report, "_list_and_parity", lambda *a: pytest.fail("report started"))
    out = tmp_path / "out"
    code = main([command, "--device", "gpu", "--threads", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err == (f"resnet-rosetta {command}: error: --device gpu: no framework sees a CUDA GPU (torch: CUDA 13.0 "
                   "build, cannot reach the driver or a device: Found no NVIDIA driver on your system.; "
                   "paddle, flax: CPU-only build); run with --device cpu\n")


def test_report_on_a_gpu_runs_parity_there_for_the_frameworks_that_see_it(monkeypatch, capsys, sees, tmp_path):
    _fake_install(monkeypatch)
    sees(torch=H200, flax=H200)
    called = {}

    def fake_list_and_parity(args, extra, out, timeout):
        called["parity"] = extra
        raise KeyboardInterrupt  # stop before any cell: what parity was asked is all this test needs
    monkeypatch.setattr(report, "_list_and_parity", fake_list_and_parity)
    assert main(["report", "--quick", "--threads", "1", "--out", str(tmp_path / "r")]) == 130
    assert called["parity"] == ["--arch", "resnet18", "--device", "gpu", "--frameworks", "torch,flax"]
