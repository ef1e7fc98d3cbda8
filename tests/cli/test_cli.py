"""The CLI as a user runs it: list, convert + forward for every preset in every framework, parity reports."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.oracle import Oracle
from resnet_rosetta.common.spec import PRESETS, get_spec
from resnet_rosetta.common.tolerance import compare, tolerance

CLI = [sys.executable, "-m", "resnet_rosetta.cli.main"]
NATIVE_FILE = {"torch": "w.pth", "paddle": "w.pdparams", "flax": "w.msgpack"}


def test_list_prints_every_preset_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS.names():
        assert f"\n{name} " in out
    line = next(l for l in out.splitlines() if l.startswith("resnet50 "))
    assert "25,557,032" in line and "4.09" in line


# One preset per structural family (basic / small stem / grouped bottleneck) end to end through the CLI;
# every preset's structure in every framework is covered by test_parity_eval.py at narrow widths.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "resnet50_small", "resnext50_32x4d"])
def test_convert_and_forward_through_every_framework(name: str, tmp_path: Path) -> None:
    """Canonical -> each framework's native file -> forward in that framework == the oracle."""
    spec = get_spec(name).replace(num_classes=5)
    weights = random_weights(spec, seed=11)
    save_canonical(tmp_path / "w.safetensors", weights, spec)
    size = 32
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = Oracle(spec, weights).forward(x)["logits"]
    for fw, native in NATIVE_FILE.items():
        assert main(["convert", str(tmp_path / "w.safetensors"), str(tmp_path / native)]) == 0
        assert main(["forward", "--framework", fw, "--weights", str(tmp_path / native),
                     "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / f"{fw}.npy")]) == 0
        logits = np.load(tmp_path / f"{fw}.npy")
        assert logits.shape == (1, 5)
        assert compare(logits, expected, tolerance("eval")).passed, fw


def test_forward_stages_writes_named_nchw_outputs(tmp_path: Path) -> None:
    spec = get_spec("resnet18_small")
    save_canonical(tmp_path / "w.safetensors", random_weights(spec), spec)
    np.save(tmp_path / "x.npy", np.ones((2, 3, 32, 32), np.float32))
    assert main(["forward", "--framework", "flax", "--weights", str(tmp_path / "w.safetensors"),
                 "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "s.npz"), "--stages"]) == 0
    stages = np.load(tmp_path / "s.npz")
    assert list(stages) == ["stem", "layer1", "layer2", "layer3", "layer4", "pooled", "logits"]
    assert stages["stem"].shape == (2, 64, 32, 32) and stages["layer4"].shape == (2, 512, 4, 4)


@pytest.mark.slow
def test_parity_writes_json_and_markdown_and_passes(tmp_path: Path) -> None:
    proc = subprocess.run(CLI + ["parity", "--arch", "resnet18_small", "--batch", "2", "--checks", "eval",
                                 "--dtype", "fp32", "--json", str(tmp_path / "p.json"), "--markdown", str(tmp_path / "p.md")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "torch vs oracle" in proc.stdout and "parity: PASS" in proc.stdout
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["schema"] == "resnet-rosetta-parity/2" and doc["passed"] is True
    assert {(c["left"], c["right"]) for c in doc["checks"]} >= {("torch", "oracle"), ("paddle", "flax")}
    assert doc["numerics"]["torch"]["torch.backends.cuda.matmul.allow_tf32"] is False
    assert doc["numerics"]["flax"]["jax_default_matmul_precision"] == "highest"
    assert doc["settings"]["device"] == "cpu" and {n["computed on"] for n in doc["numerics"].values()} == {"cpu"}
    markdown = (tmp_path / "p.md").read_text()
    assert "## resnet18_small · eval" in markdown and "Computed on the CPU (every framework" in markdown
    # and by default the fp64 proof of the same preset at a quarter of its widths, named in its one line
    proof = doc["float64"]["settings"]
    assert proof["dtype"] == "fp64" and proof["widths"] == [[16, 32, 64, 128]] and proof["width_divisor"] == 4
    assert ("ports proven identical in float64" in proc.stdout and "(resnet18_small at 1/4 of the preset widths, "
            "16-128 channels: eval, 32 px, batch 2)" in proc.stdout and "## float64 proof" in markdown)


@pytest.mark.slow
def test_parity_checks_a_users_checkpoint(tmp_path: Path) -> None:
    spec = get_spec("resnet18_small")
    save_canonical(tmp_path / "mine.safetensors", random_weights(spec, seed=9), spec)
    assert main(["parity", "--no-proof", "--weights", str(tmp_path / "mine.safetensors"), "--batch", "2", "--size", "16",
                 "--checks", "eval,grad", "--frameworks", "torch,flax", "--json", str(tmp_path / "p.json")]) == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["passed"] is True and doc["settings"]["weights"] == str(tmp_path / "mine.safetensors")
    # each framework against the oracle and against each other, for both checks, all PASS
    assert len(doc["checks"]) == 6 and all(c["status"] == "pass" and c["rows"] for c in doc["checks"])


def test_user_error_from_the_console_script_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(CLI + ["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.msgpack")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"resnet-rosetta convert: error: {tmp_path / 'missing.pth'}: no such file"]
    assert not (tmp_path / "out.msgpack").exists()
