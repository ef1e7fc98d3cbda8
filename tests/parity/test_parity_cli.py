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
PASSED = ("pass", "conditioning-limited")  # a check's statuses that pass (the other is FAIL)
SMALL = ["--arch", "resnet18_small", "--size", "16", "--grad-size", "16", "--batch", "2", "--steps", "2", "--no-proof"]


def _parity(tmp_path: Path, *extra: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(CLI + SMALL + ["--json", str(tmp_path / "p.json"), *extra],
                          capture_output=True, text=True, timeout=timeout)
    doc = json.loads((tmp_path / "p.json").read_text()) if (tmp_path / "p.json").exists() else {}
    return proc, doc


@pytest.mark.slow
def test_isolated_workers_reproduce_the_in_process_results(tmp_path: Path) -> None:
    """The in-process run is `main()` in this process (the CLI's own code; no second interpreter)."""
    (tmp_path / "iso").mkdir()
    assert main(["parity", *SMALL, "--checks", "eval,grad", "--json", str(tmp_path / "in.json")]) == 0
    local = json.loads((tmp_path / "in.json").read_text())
    proc, doc = _parity(tmp_path / "iso", "--isolate", "--checks", "eval,grad", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for run_doc in (local, doc):  # both runs pass: every check PASS
        assert run_doc["passed"] is True and not run_doc["errors"]
        assert all(c["status"] in PASSED for c in run_doc["checks"])
    assert doc["settings"]["isolate"] is True and local["settings"]["isolate"] is False
    assert {c["check"] for c in doc["checks"]} == {"eval", "grad"}
    run = tmp_path / "run" / "resnet18_small"
    assert sorted(p.name for p in run.glob("*.safetensors")) == ["flax.safetensors", "paddle.safetensors",
                                                                  "torch.safetensors"]
    assert "optimizer" in doc["numerics"]["paddle"]  # each worker reports its optimizer convention
    assert len(local["checks"]) == len(doc["checks"]) == 12  # (3 vs the oracle + 3 pairs) x (eval, grad)
    for a, b in zip(local["checks"], doc["checks"], strict=True):  # same kernels, same inputs: the same errors
        assert len(a["rows"]) == len(b["rows"]) > 0
        assert (a["check"], a["left"], a["right"], a["status"]) == (b["check"], b["left"], b["right"], b["status"])
        assert [r["max_rel"] for r in a["rows"]] == pytest.approx([r["max_rel"] for r in b["rows"]], rel=1e-3, abs=1e-9)


@pytest.mark.slow
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


@pytest.mark.slow
def test_markdown_report_has_one_table_per_check_and_the_conventions(tmp_path: Path) -> None:
    proc, doc = _parity(tmp_path, "--checks", "eval,train", "--bn-running-var", "native",
                        "--markdown", str(tmp_path / "p.md"))
    assert proc.returncode == 0 and doc["passed"] is True, proc.stdout + proc.stderr
    assert all(c["status"] in PASSED for c in doc["checks"]) and len(doc["checks"]) == 12
    # native conventions differ by design: running_var rows are shown but cannot fail
    torch_vs_paddle = next(c for c in doc["checks"] if c["check"] == "train" and c["left"] == "torch"
                           and c["right"] == "paddle")
    var_rows = [r for r in torch_vs_paddle["rows"] if r["quantity"].endswith("running_var")]
    assert var_rows and all(r["passed"] for r in var_rows) and max(r["max_rel"] for r in var_rows) > 1e-3
    md = (tmp_path / "p.md").read_text()
    for check in ("eval", "train"):
        assert f"## resnet18_small · {check}" in md
    # the last BN sees 2 samples x 2 x 2 positions: torch feeds n/(n-1) = 8/7 of the biased variance
    assert "Running-variance feed" in md and f"torch x{8 / 7:.5f}" in md and "paddle x1.00000" in md
    assert "running_var feed on" in proc.stdout
