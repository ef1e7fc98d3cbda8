"""The training loop and the `train` command without the CLI or a framework: a scripted trainer shows
what the loop feeds it (initial weights, the lr of every step, momentum on resume) and what it records."""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping

import numpy as np
import pytest

from resnet_rosetta import frameworks
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.common.training import initial_weights, trainable_keys
from resnet_rosetta.training.checkpoint import Resume, load_checkpoint
from resnet_rosetta.training.command import train_command
from resnet_rosetta.training.compare import run_compare
from resnet_rosetta.training.config import SETTINGS, TrainConfig, learning_rate, new_config, run_spec
from resnet_rosetta.training.loop import train

from test_datasets import write_mnist

STEPS = 6  # 48 training images in batches of 8


class ScriptedTrainer:
    """A stand-in for frameworks/<fw>/training.py's Trainer: loss = loss_at(step), always predicts class 0."""

    CONVENTION = "scripted SGD"
    loss_at: Callable[[int], float] = staticmethod(lambda step: 1.0 / step)
    made: list["ScriptedTrainer"] = []

    def __init__(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], *, lr: float, momentum: float,
                 weight_decay: float) -> None:
        self.spec, self.weights, self.lrs, self.loaded = spec, dict(weights), [], None
        ScriptedTrainer.made.append(self)

    def set_lr(self, lr: float) -> None:
        self.lrs.append(lr)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.loss_at(len(self.lrs))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.eye(10, dtype=np.float32)[np.zeros(len(x), dtype=int)]

    def canonical_weights(self) -> dict[str, np.ndarray]:
        return self.weights

    def optimizer_state(self) -> dict[str, np.ndarray]:
        return {k: np.full(self.weights[k].shape, len(self.lrs), np.float32) for k in trainable_keys(self.spec)}

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.loaded = dict(state)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedTrainer]:
    ScriptedTrainer.made = []
    monkeypatch.setattr(frameworks, "load", lambda name, part: SimpleNamespace(Trainer=ScriptedTrainer))
    return ScriptedTrainer


@pytest.fixture
def config(tmp_path: Path) -> TrainConfig:
    data_dir = write_mnist(tmp_path / "data")
    given = {**dict.fromkeys(SETTINGS), "width": 4, "dataset": "mnist", "data_dir": data_dir, "image_size": 8,
             "batch_size": 8, "epochs": 2}
    return new_config(given, "torch")


def test_fresh_run_then_resume(scripted: type[ScriptedTrainer], config: TrainConfig, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.safetensors"
    history = train(config, out)
    first = scripted.made[0]
    spec = run_spec(config, 1, 10)
    for key, value in initial_weights(spec, config.seed).items():
        np.testing.assert_array_equal(first.weights[key], value, err_msg=key)
    assert first.lrs == pytest.approx([learning_rate(config, s, 2 * STEPS) for s in range(2 * STEPS)])
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["train_loss"] == pytest.approx(np.mean([1 / s for s in range(1, STEPS + 1)]))
    # write_mnist labels image i with i % 10: class 0, always predicted, is 5 of 48 train and 3 of 24 test images
    assert history[0]["test_acc"] == pytest.approx(3 / 24) and history[0]["train_acc"] == pytest.approx(5 / 48)
    assert "scripted SGD" in capsys.readouterr().out

    _, _, state = load_checkpoint(out)
    assert state.epoch == 2 and state.history == history
    assert {float(v.flat[0]) for v in state.momentum.values()} == {2 * STEPS}

    longer = dataclasses.replace(config, epochs=3)
    history = train(longer, out, Resume(out, *load_checkpoint(out)))
    resumed = scripted.made[1]
    assert {float(v.flat[0]) for v in resumed.loaded.values()} == {2 * STEPS}
    assert resumed.lrs == pytest.approx([learning_rate(longer, s, 3 * STEPS) for s in range(2 * STEPS, 3 * STEPS)])
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[:2] == state.history
    assert load_checkpoint(out)[2].epoch == 3


def test_refusals_before_any_step(scripted: type[ScriptedTrainer], config: TrainConfig, tmp_path: Path) -> None:
    out = tmp_path / "run.safetensors"
    with pytest.raises(UserError, match="--batch-size 64 exceeds the 48 training images"):
        train(dataclasses.replace(config, batch_size=64), out)
    train(dataclasses.replace(config, epochs=1), out)
    with pytest.raises(UserError, match=r"the run already has 1 epochs; pass --epochs N with N > 1"):
        train(dataclasses.replace(config, epochs=1), out, Resume(out, *load_checkpoint(out)))
    with pytest.raises(UserError, match="checkpoint is for a different model: widths"):
        train(dataclasses.replace(config, width=8), out, Resume(out, *load_checkpoint(out)))


def test_non_finite_loss_names_the_step_and_keeps_the_last_pair(scripted: type[ScriptedTrainer],
                                                                config: TrainConfig, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run.safetensors"
    monkeypatch.setattr(ScriptedTrainer, "loss_at", staticmethod(lambda step: math.nan if step == STEPS + 3 else 1.0))
    message = (rf"^non-finite loss \(nan\) at epoch 2, step 3 of {STEPS}: training diverged \(try a lower --lr\); "
               rf"last complete checkpoint: {re.escape(str(out))} \(epoch 1\)$")
    with pytest.raises(UserError, match=message):
        train(config, out)
    assert load_checkpoint(out)[2].epoch == 1


def test_train_command_chooses_fresh_resumed_or_compare(scripted: type[ScriptedTrainer], config: TrainConfig,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = {name: getattr(config, name) for name in SETTINGS}
    assert train_command(settings) == 0
    written = tmp_path / "runs" / "mnist-resnet18_small-torch.safetensors"
    assert load_checkpoint(written)[2].epoch == 2
    assert train_command({**dict.fromkeys(SETTINGS), "epochs": 3}, resume=written) == 0
    assert load_checkpoint(written)[2].epoch == 3  # a resumed run writes back to its checkpoint by default
    with pytest.raises(UserError, match="--resume continues one run; use it with --framework, not --compare"):
        train_command(settings, compare=["torch", "paddle"], resume=written)


def test_a_failed_compare_run_is_named(config: TrainConfig, tmp_path: Path) -> None:
    broken = dataclasses.replace(config, data_dir=str(tmp_path / "nowhere"))  # each child stops at loading the data
    with pytest.raises(UserError, match=r"the torch run failed \(exit status 2\); its message is above"):
        run_compare(broken, ["torch", "flax"], tmp_path / "cmp.safetensors")
    assert not list(tmp_path.glob("cmp*"))
