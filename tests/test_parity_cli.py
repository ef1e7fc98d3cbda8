"""`resnet-rosetta parity` as a user runs it: isolated workers, foreign Pythons, timeouts, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.spec import get_spec

CLI = [sys.executable, "-m", "resnet_rosetta.cli.main", "parity"]
SMALL = ["--arch", "resnet18_small", "--size", "16", "--grad-size", "16", "--batch", "2", "--steps", "2"]


def _parity(tmp_path: Path, *extra: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(CLI + SMALL + ["--json", str(tmp_path / "p.json"), *extra],
                          capture_output=True, text=True, timeout=timeout)
    doc = json.loads((tmp_path / "p.json").read_text()) if (tmp_path / "p.json").exists() else {}
    return proc, doc


def test_isolated_workers_exchange_files_and_agree(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--isolate", "--checks", "eval,train,grad", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["settings"]["isolate"] is True and not doc["errors"]
    assert {c["check"] for c in doc["checks"]} == {"eval", "train", "grad"}
    assert all(c["status"] == "pass" for c in doc["checks"])
    run = tmp_path / "run" / "resnet18_small"
    assert sorted(p.name for p in run.glob("*.safetensors")) == ["flax.safetensors", "paddle.safetensors",
                                                                  "torch.safetensors"]
    assert "optimizer" in doc["numerics"]["paddle"]  # each worker reports its optimizer convention


def test_a_broken_python_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--checks", "eval", "--python", f"flax={tmp_path / 'no-such-python'}")
    assert proc.returncode == 1
    assert "flax: python" in doc["errors"]["flax"] and "does not exist" in doc["errors"]["flax"]
    assert {c["left"] for c in doc["checks"]} == {"torch", "paddle"}
    assert "flax: did not run" in proc.stdout


def test_a_python_without_the_framework_is_named(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    proc, doc = _parity(tmp_path, "--checks", "eval", "--frameworks", "torch,paddle",
                        "--python", f"paddle={bare / 'bin' / 'python'}")
    assert proc.returncode == 1
    err = doc["errors"]["paddle"]
    assert err.startswith("paddle: worker") and "exited with status 1" in err and "No module named" in err
    assert all(c["left"] == "torch" for c in doc["checks"])


def test_a_worker_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--checks", "eval", "--frameworks", "flax", "--isolate", "--timeout", "0.5")
    assert proc.returncode == 1
    assert doc["errors"]["flax"] == "flax: worker exceeded the 0.5 s timeout and was stopped"


def test_unknown_check_and_mismatched_checkpoint_are_user_errors(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "--checks", "eval,gradz"]) == 2
    assert "unknown check 'gradz'" in capsys.readouterr().err
    spec = get_spec("resnet18_small")
    save_canonical(tmp_path / "w.safetensors", random_weights(spec), spec)
    assert main(["parity", "--weights", str(tmp_path / "w.safetensors"), "--arch", "resnet50"]) == 2
    assert "checkpoint is resnet18_small, but --arch says resnet50" in capsys.readouterr().err


def test_markdown_report_has_one_table_per_check_and_the_conventions(tmp_path: Path) -> None:
    proc, _ = _parity(tmp_path, "--checks", "eval,train,step", "--bn-running-var", "native",
                      "--markdown", str(tmp_path / "p.md"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (tmp_path / "p.md").read_text()
    for check in ("eval", "train", "step"):
        assert f"## resnet18_small · {check}" in md
    assert "Running-variance feed" in md and "torch x1.0" in md
    assert "running_var feed on" in proc.stdout
