"""`parity --device gpu`: the frameworks that see a GPU compute there with TF32 off and deterministic
kernels, the others are listed as unsupported with what they see, the report says where it ran.
Decided on fakes here; the real GPU run is the `gpu`-marked test at the end."""
from __future__ import annotations

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta import frameworks
from resnet_rosetta.cli.main import main
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks import devices
from resnet_rosetta.frameworks.devices import Sight
from resnet_rosetta.parity import engine, isolation, report, run

SMALL = ["--arch", "resnet18_small", "--size", "16", "--grad-size", "16", "--batch", "2", "--steps", "2", "--no-proof"]


def test_every_parity_process_gets_tf32_off_and_deterministic_xla():
    env = isolation.gpu_numerics_env({})
    assert env == {"NVIDIA_TF32_OVERRIDE": "0", "XLA_FLAGS": "--xla_gpu_deterministic_ops=true"}
    user = isolation.gpu_numerics_env({"NVIDIA_TF32_OVERRIDE": "1", "XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert user == {"NVIDIA_TF32_OVERRIDE": "1",  # the user's explicit choice stands
                    "XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=true"}
    assert isolation.gpu_numerics_env(user) == user  # the flag is added once


def test_the_case_file_carries_the_device_to_an_isolated_worker(tmp_path):
    case = engine.ParityCase.seeded(get_spec("resnet18_small"), 16, 2, hyper=engine.Hyper(steps=1))
    isolation.save_case(engine.ParityCase(**{**case.__dict__, "device": "gpu"}), ("eval",), 0, tmp_path / "c.st")
    loaded, checks, _ = isolation.load_case(tmp_path / "c.st")
    assert loaded.device == "gpu" and checks == ("eval",)


def test_each_framework_builds_its_models_on_the_case_device(monkeypatch):
    built = []

    class Fake:
        def __init__(self, spec, weights, device="cpu", dtype="fp32", **kwargs):
            built.append((type(self).__name__, device))

        def forward(self, x, train=False, feed=None):
            return {"logits": np.zeros((2, 3), np.float32)}

        def canonical_weights(self):
            return {}

        def loss_and_grads(self, x, y):
            return 0.0, {}
        gates: dict = {}

    adapter = types.SimpleNamespace(Adapter=type("Adapter", (Fake,), {}))
    training = types.SimpleNamespace(Trainer=type("Trainer", (Fake,), {}))
    monkeypatch.setattr(frameworks, "load", lambda name, part="adapter": training if part == "training" else adapter)
    case = engine.ParityCase.seeded(get_spec("resnet18_small"), 16, 2, hyper=engine.Hyper(steps=1))
    engine.framework_outputs("torch", engine.ParityCase(**{**case.__dict__, "device": "gpu"}), ("eval", "grad"))
    assert built == [("Adapter", "gpu"), ("Trainer", "gpu")]


def test_frameworks_without_a_gpu_are_unsupported_and_the_run_gets_gpu_numerics(monkeypatch):
    monkeypatch.setattr(devices, "probe", lambda fws: {"torch": Sight(count=1), "paddle": Sight(),
                                                       "flax": Sight(build="CUDA 13", error="no driver")})
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)  # tests/conftest.py sets it
    monkeypatch.setenv("XLA_FLAGS", "")
    found = run._Found()
    run._on_gpu(run.Settings(device="gpu").validated(), found)
    assert found.unsupported == {"paddle": "paddle sees no GPU (CPU-only build)",
                                 "flax": "flax sees no GPU (CUDA 13 build, cannot reach the driver or a device: "
                                         "no driver)"}
    assert os.environ["NVIDIA_TF32_OVERRIDE"] == "0" and os.environ["XLA_FLAGS"] == isolation.DETERMINISTIC_XLA


def test_parity_on_a_gpu_nobody_sees_is_one_line_and_writes_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(devices, "machine_has_gpu", lambda: False)
    code = main(["parity", "--device", "gpu", *SMALL, "--json", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "p.json").exists()
    assert err == ("resnet-rosetta parity: error: --device gpu: no framework sees a CUDA GPU (torch, paddle, flax: "
                   f"{devices.NO_DEVICE}); run with --device cpu\n")


def test_the_report_says_where_parity_ran():
    assert report.where({"settings": {"device": "cpu"}}) == "Computed on the CPU (every framework and the float64 oracle)."
    assert report.where({"settings": {"device": "gpu"}}).startswith("Computed on the GPU by every framework that sees "
                                                                    "one, TF32 off")


@pytest.mark.gpu
def test_parity_on_the_gpu_passes_for_each_framework_that_sees_it(tmp_path: Path):
    code = main(["parity", "--device", "gpu", *SMALL, "--json", str(tmp_path / "p.json")])
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["settings"]["device"] == "gpu" and code == 0 and doc["passed"]
    ran = {c["left"] for c in doc["checks"]} | {c["right"] for c in doc["checks"]}
    assert "torch" in ran and set(doc["unsupported"]).isdisjoint(ran)
    assert doc["numerics"]["torch"]["torch.backends.cuda.matmul.allow_tf32"] is False
    assert {doc["numerics"][fw]["computed on"] for fw in ran - {"oracle"}} == {"gpu"}
