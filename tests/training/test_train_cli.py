"""`resnet-rosetta train` and `evaluate` as a user runs them: tiny models (--width 4) on tiny IDX files."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import load_canonical, random_weights, save_canonical
from resnet_rosetta.training.datasets import load_dataset
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.training.checkpoint import load_checkpoint, state_path
from resnet_rosetta.training.metrics import confusion_matrix

from test_datasets import write_mnist

CLI = str(Path(sys.executable).with_name("resnet-rosetta"))
TINY = ["--arch", "resnet18_small", "--width", "4", "--dataset", "mnist", "--image-size", "8", "--batch-size", "8"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and spinning OpenMP threads crawl on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("data") / "MNIST" / "raw").parent.parent


def _train(data: Path, out: Path, *extra: str, framework: str = "torch") -> int:
    return main(["train", "--framework", framework, *TINY, "--data-dir", str(data), "--out", str(out), *extra])


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


@pytest.mark.slow
@pytest.mark.parametrize("trained_in", FRAMEWORKS)
def test_trained_anywhere_predicts_the_same_everywhere(mnist: Path, tmp_path: Path, trained_in: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "run.safetensors"
    # 10 px keeps every label's bar on its own row (8 px merges some); five epochs of 6 steps
    assert _train(mnist, ckpt, "--epochs", "5", "--lr", "0.1", "--image-size", "10", framework=trained_in) == 0
    assert re.search(r"epoch +5/5 +train loss [\d.]+ +train acc +[\d.]+% +test acc +[\d.]+%", capsys.readouterr().out)
    labels = load_dataset("mnist", 10, mnist).y_test
    logits = {}
    for fw in FRAMEWORKS:
        prefix = tmp_path / f"eval-{fw}"
        assert main(["evaluate", "--framework", fw, "--weights", str(ckpt), "--dataset", "mnist",
                     "--data-dir", str(mnist), "--out", str(prefix)]) == 0
        logits[fw] = np.load(f"{prefix}.logits.npy")
        report = Path(f"{prefix}.txt").read_text()
        predicted = logits[fw].argmax(1)
        assert float(re.search(r"top-1 accuracy: ([\d.]+)%", report)[1]) == pytest.approx(
            100 * np.mean(predicted == labels), abs=0.005)
        # it learned: 24 of 24 test images in torch with this data (92-100% over data seeds 0-2,
        # measured 2026-12-02, AMD EPYC VM), chance 10%
        assert np.mean(predicted == labels) >= 0.8, fw
        rows = [[int(c) for c in line.split()[2:]] for line in report.splitlines()[5:15]]
        np.testing.assert_array_equal(rows, confusion_matrix(labels, predicted, 10))
        assert Path(f"{prefix}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for fw in FRAMEWORKS:
        np.testing.assert_array_equal(logits[fw].argmax(1), logits[trained_in].argmax(1), err_msg=fw)
        assert compare(logits[fw], logits[trained_in], 0).max_rel <= tolerance("eval", pairwise=True), fw
    # the canonical checkpoint is an ordinary one: `convert` takes it as it is
    assert main(["convert", str(ckpt), str(tmp_path / "run.pt")]) == 0


@pytest.mark.slow
def test_compare_table_and_curves(mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "cmp.safetensors"
    assert main(["train", "--compare", "torch,paddle", *TINY, "--data-dir", str(mnist), "--epochs", "2",
                 "--out", str(base)]) == 0
    table = (tmp_path / "cmp-compare.md").read_text()
    assert re.search(r"\| torch \| 2 \| [\d.]+ \|", table) and re.search(r"\| paddle \| 2 \| [\d.]+ \|", table)
    assert "final test accuracy spread" in table and table.split("\n", 2)[2].strip() in capsys.readouterr().out
    assert (tmp_path / "cmp-compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    configs = {fw: load_checkpoint(tmp_path / f"cmp-{fw}.safetensors")[2].config for fw in ("torch", "paddle")}
    assert configs["torch"].framework == "torch" and configs["paddle"].framework == "paddle"
    assert {**vars(configs["torch"]), "framework": None} == {**vars(configs["paddle"]), "framework": None}


@pytest.mark.slow
def test_ctrl_c_keeps_the_last_checkpoint_and_resume_is_exact(mnist: Path, tmp_path: Path) -> None:
    # All three runs are subprocesses with one environment: bitwise equality needs the same thread count
    # (one thread: a tiny model gains nothing from more, and spinning OpenMP threads crawl on a busy machine).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt, straight = tmp_path / "int.safetensors", tmp_path / "straight.safetensors"
    run = [CLI, "train", "--framework", "torch", *TINY, "--data-dir", str(mnist), "--epochs", "6"]
    proc = subprocess.Popen([*run, "--out", str(ckpt)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 120
    while not state_path(ckpt).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"continue with --resume {ckpt}" in err and err.rstrip().endswith("resnet-rosetta train: interrupted")
    _, _, state = load_checkpoint(ckpt)  # the pair is intact and consistent
    assert 1 <= state.epoch < 6

    for cmd in ([CLI, "train", "--framework", "torch", "--resume", str(ckpt)], [*run, "--out", str(straight)]):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    resumed_w, _, resumed = load_checkpoint(ckpt)
    straight_w, _, reference = load_checkpoint(straight)
    assert resumed.epoch == reference.epoch == 6
    for key, value in straight_w.items():
        np.testing.assert_array_equal(resumed_w[key], value, err_msg=key)
    for key, value in reference.momentum.items():
        np.testing.assert_array_equal(resumed.momentum[key], value, err_msg=key)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)


def test_crash_while_writing_keeps_the_previous_pair(mnist: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_rosetta.common import atomic

    ckpt = tmp_path / "crash.safetensors"
    assert _train(mnist, ckpt, "--epochs", "1") == 0
    before = ckpt.read_bytes(), state_path(ckpt).read_bytes()

    def half_write(dest: str, data: bytes) -> None:
        with atomic.atomic_path(dest) as tmp:
            tmp.write_bytes(data[:7])
            raise OSError("disk full")

    monkeypatch.setattr(atomic, "atomic_write_bytes", half_write)
    with pytest.raises(OSError, match="disk full"):
        main(["train", "--framework", "torch", "--resume", str(ckpt), "--epochs", "2"])
    assert (ckpt.read_bytes(), state_path(ckpt).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crash.safetensors", "crash.train.safetensors"]
    monkeypatch.undo()
    assert main(["train", "--framework", "torch", "--resume", str(ckpt), "--epochs", "2"]) == 0
    assert load_checkpoint(ckpt)[2].epoch == 2


def test_non_finite_loss_stops_with_epoch_and_step(mnist: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "nan.safetensors"
    assert _train(mnist, ckpt, "--epochs", "2", "--lr", "1e30", "--lr-schedule", "constant") == 2
    assert re.fullmatch(r"resnet-rosetta train: error: non-finite loss \((nan|inf)\) at epoch 1, step \d+ of 6: "
                        r"training diverged \(try a lower --lr\); last complete checkpoint: none written",
                        _error(capsys))
    assert not ckpt.exists()


def test_bad_input_is_named(mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path / "nowhere", tmp_path / "x.safetensors") == 2
    assert "does not exist; it should hold train-images-idx3-ubyte" in _error(capsys)

    ckpt = tmp_path / "ok.safetensors"
    assert _train(mnist, ckpt, "--epochs", "1") == 0
    capsys.readouterr()
    assert main(["train", "--framework", "torch", "--resume", str(ckpt), "--arch", "resnet50_small"]) == 2
    assert "conflicting: --arch resnet50_small (the run used resnet18_small)" in _error(capsys)
    assert main(["train", "--framework", "torch", "--resume", str(ckpt)]) == 2
    assert "already has 1 epochs" in _error(capsys)
    assert main(["evaluate", "--framework", "torch", "--weights", str(ckpt), "--dataset", "mnist",
                 "--data-dir", str(mnist), "--arch", "resnet50_small"]) == 2
    assert "checkpoint is for resnet18_small, not --arch resnet50_small" in _error(capsys)

    seven = tmp_path / "seven.safetensors"
    spec = get_spec("resnet18_small").replace(num_classes=7, in_channels=1, input_size=8)
    save_canonical(seven, random_weights(spec), spec)
    assert main(["evaluate", "--framework", "torch", "--weights", str(seven), "--dataset", "mnist",
                 "--data-dir", str(mnist)]) == 2
    assert "checkpoint classifies 7 classes; mnist has 10" in _error(capsys)
    assert main(["train", "--framework", "torch", "--resume", str(seven), "--epochs", "2"]) == 2
    assert "no training state seven.train.safetensors beside it" in _error(capsys)

    other, _ = load_canonical(ckpt)  # weights replaced behind the training state's back
    save_canonical(ckpt, {k: v * 2 for k, v in other.items()}, load_canonical(ckpt)[1])
    assert main(["train", "--framework", "torch", "--resume", str(ckpt), "--epochs", "2"]) == 2
    assert "belongs to another version of ok.safetensors" in _error(capsys)
