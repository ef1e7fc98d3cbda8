"""ResNet-D through the commands as a user runs them, like resnet50: `train` (and `--resume` in another
framework) and `parity`, at tiny sizes. The numerics of every framework against the oracle are
tests/parity's and tests/frameworks/test_resnet_d.py's; this checks the commands. (A `bench` cell is
a fresh process of 10-15 s here: `report --full`'s resnet50d row is checked by its plan,
tests/benchmarks/test_bench_plan.py.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.training.checkpoint import load_checkpoint

from test_datasets import write_mnist


@pytest.mark.slow
def test_train_resnet50d_then_resume_in_paddle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_mnist(tmp_path / "MNIST" / "raw", n_train=16, n_test=8).parent.parent
    ckpt = tmp_path / "d.safetensors"
    tiny = ["--arch", "resnet50d", "--width", "4", "--dataset", "mnist", "--data-dir", str(data),
            "--image-size", "16", "--batch-size", "8", "--out", str(ckpt)]
    assert main(["train", "--framework", "torch", *tiny, "--epochs", "1"]) == 0
    assert main(["train", "--framework", "paddle", *tiny, "--epochs", "2", "--resume", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"epoch +1/1 +train loss [\d.]+", out) and re.search(r"epoch +2/2 +train loss [\d.]+", out)
    _, spec, _ = load_checkpoint(ckpt)
    assert (spec.stem, spec.downsample, spec.stem_width, spec.depths) == ("deep", "avg", 4, (3, 4, 6, 3))


@pytest.mark.slow
def test_parity_resnet50d(tmp_path: Path) -> None:
    """Eval parity of the full-width resnet50d at 32 px (train-mode checks need 64 px: at 32 px layer4's
    batch norm sees 2 values per channel, parity/run.py PROOF)."""
    doc_path = tmp_path / "p.json"
    assert main(["parity", "--arch", "resnet50d", "--frameworks", "torch,paddle", "--checks", "eval",
                 "--size", "32", "--batch", "1", "--json", str(doc_path)]) == 0
    doc = json.loads(doc_path.read_text())
    assert doc["passed"] and {(c["left"], c["right"]) for c in doc["checks"]} == {
        ("torch", "oracle"), ("paddle", "oracle"), ("torch", "paddle")}
