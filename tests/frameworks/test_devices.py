"""`--device auto|cpu|gpu` decided on fakes of what each framework sees (frameworks/devices.py), and
each framework's own report of what it sees on this machine."""
from __future__ import annotations

import pytest

from resnet_rosetta import frameworks
from resnet_rosetta.common import process
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.frameworks import devices
from resnet_rosetta.frameworks.devices import Sight

H200 = Sight(count=1, build="CUDA 13.0", name="NVIDIA H200")
CPU_ONLY = Sight()
NO_DRIVER = Sight(build="CUDA 12.6", error="CUDA driver version is insufficient for CUDA runtime version")


def test_what_a_framework_sees_reads_as_one_clause():
    assert H200.text() == "1 GPU (NVIDIA H200)"
    assert Sight(count=2).text() == "2 GPUs"
    assert CPU_ONLY.text() == "CPU-only build"
    assert NO_DRIVER.text() == ("CUDA 12.6 build, cannot reach the driver or a device: CUDA driver version is "
                                "insufficient for CUDA runtime version")
    assert devices.seen({"torch": H200, "paddle": CPU_ONLY, "flax": CPU_ONLY}) == (
        "torch: 1 GPU (NVIDIA H200); paddle, flax: CPU-only build")


def test_auto_is_the_gpu_when_any_framework_sees_one_and_the_others_leave_with_a_note():
    choice = devices.choose("auto", {"torch": H200, "paddle": NO_DRIVER, "flax": CPU_ONLY})
    assert (choice.device, choice.frameworks) == ("gpu", ["torch"])
    assert choice.notes[0] == "--device auto: the GPU (torch sees it)"
    assert choice.notes[1] == ("paddle left out (not started, not budgeted): it sees no GPU (CUDA 12.6 build, "
                               "cannot reach the driver or a device: CUDA driver version is insufficient for CUDA "
                               "runtime version)")
    assert choice.notes[2].startswith("flax left out") and "CPU-only build" in choice.notes[2]
    both = devices.choose("gpu", {"torch": H200, "flax": H200})
    assert (both.device, both.frameworks, both.notes) == ("gpu", ["torch", "flax"], [])


def test_auto_is_the_cpu_when_no_framework_sees_a_gpu_and_cpu_keeps_everyone():
    sights = {"torch": NO_DRIVER, "paddle": CPU_ONLY}
    choice = devices.choose("auto", sights)
    assert (choice.device, choice.frameworks) == ("cpu", ["torch", "paddle"])
    assert "no framework sees a GPU" in choice.notes[0]
    assert devices.choose("cpu", {"torch": H200, "paddle": CPU_ONLY}) == devices.Choice("cpu", ["torch", "paddle"], [])


def test_gpu_that_no_framework_sees_is_one_line_naming_each_but_can_be_planned():
    sights = {"torch": NO_DRIVER, "paddle": CPU_ONLY, "flax": CPU_ONLY}
    with pytest.raises(UserError) as err:
        devices.choose("gpu", sights)
    message = str(err.value)
    assert "\n" not in message and message.startswith("--device gpu: no framework sees a CUDA GPU (torch: CUDA 12.6")
    assert "paddle, flax: CPU-only build" in message and message.endswith("run with --device cpu")
    planned = devices.choose("gpu", sights, planning=True)
    assert (planned.device, planned.frameworks) == ("gpu", ["torch", "paddle", "flax"])
    assert planned.notes[0].startswith("planned for a GPU this machine does not have (torch: CUDA 12.6")
    with pytest.raises(UserError, match="--device must be one of auto, cpu, gpu, found 'tpu'"):
        devices.choose("tpu", sights)


def test_probe_starts_no_framework_without_an_nvidia_device_and_survives_a_crashing_one(monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("a framework was started on a machine with no NVIDIA device")
    monkeypatch.setattr(devices, "machine_has_gpu", lambda: False)
    monkeypatch.setattr(process, "call", no_process)
    assert devices.probe(["torch", "flax"]) == {"torch": Sight(error=devices.NO_DEVICE),
                                                 "flax": Sight(error=devices.NO_DEVICE)}

    def fake_call(target, framework, **kwargs):
        assert target == "resnet_rosetta.frameworks.devices:sight_of"
        if framework == "paddle":
            raise process.ProcessFailed("exited with status -11 (SIGSEGV)")
        return {"count": 1, "build": "CUDA 13.0", "name": "NVIDIA H200"}
    monkeypatch.setattr(devices, "machine_has_gpu", lambda: True)
    monkeypatch.setattr(process, "call", fake_call)
    sights = devices.probe(["torch", "paddle"])
    assert sights["torch"] == H200
    assert sights["paddle"].count == 0 and "the probe failed: exited with status -11" in sights["paddle"].text()


def test_each_framework_reports_what_it_sees_here(framework):
    sight = Sight(**frameworks.load(framework, "bench").gpu_sight())
    if sight.count:
        pytest.skip(f"{framework} sees a GPU here")
    assert sight.build is None or sight.build.startswith(("CUDA", "jax-cuda"))
    # a CUDA build that sees no GPU says why, in one line (torch's CUDA wheel on this CPU machine)
    assert sight.build is None or (sight.error and "\n" not in sight.error)
