"""The training loop over one framework's trainer (`frameworks/<fw>/training.py`).

Initial weights are drawn once in NumPy from the seed (identical in every framework), batches come
in the order `datasets.epoch_order(seed, epoch)`, the step is the framework's own SGD
(`Trainer.CONVENTION`). After every epoch: train loss (mean of the step losses, train mode), train
and test accuracy (eval mode, whole split) and a checkpoint pair (`checkpoint.py`).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common.canonical import Weights
from .datasets import Dataset, batches, epoch_order, load_dataset
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.training import initial_weights
from resnet_rosetta.common.atomic import check_writable
from .checkpoint import Resume, TrainState, check_spec, interrupts_deferred, save_checkpoint, state_path
from .config import TrainConfig, learning_rate, run_spec
from .metrics import accuracy, predict_all


class Trainer(Protocol):
    """What the loop needs of `frameworks/<fw>/training.py`'s `Trainer`."""

    CONVENTION: str

    def step(self, x: np.ndarray, y: np.ndarray) -> float: ...
    def set_lr(self, lr: float) -> None: ...
    def predict(self, x: np.ndarray) -> np.ndarray: ...
    def canonical_weights(self) -> Weights: ...
    def optimizer_state(self) -> dict[str, np.ndarray]: ...
    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None: ...


def train(config: TrainConfig, out: Path, resume: Resume | None = None) -> list[dict[str, Any]]:
    """Train up to `config.epochs` epochs (from scratch or from `resume`), checkpointing to `out` every epoch."""
    state_path(out)  # validates the name before any work
    check_writable(out)
    data = load_dataset(config.dataset, config.image_size, config.data_dir)
    spec = run_spec(config, data.in_channels, data.num_classes)
    if resume is None:
        weights, state = initial_weights(spec, config.seed), TrainState(config, 0)
    else:
        weights, state = resume.weights, resume.state
        check_spec(resume.spec, spec, str(resume.path))
        if state.epoch >= config.epochs:
            raise UserError(f"the run already has {state.epoch} epochs; pass --epochs N with N > {state.epoch}")
    if config.batch_size > len(data.y_train):
        raise UserError(f"--batch-size {config.batch_size} exceeds the {len(data.y_train)} training images")
    trainer: Trainer = frameworks.load(config.framework, "training").Trainer(
        spec, weights, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if resume is not None:
        trainer.load_optimizer_state(state.momentum)
    history = list(state.history)
    print(f"train {config.framework} {spec.name} (width {config.width}) on {data.name} ({len(data.y_train)} train / "
          f"{len(data.y_test)} test images, {data.image_size} px, {data.source}); epochs {state.epoch + 1}.."
          f"{config.epochs}; {trainer.CONVENTION}", flush=True)
    last = (resume.path, state.epoch) if resume is not None else None  # the last complete checkpoint
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            start = time.perf_counter()
            loss = _train_epoch(trainer, data, config, epoch, last)
            record = {"epoch": epoch, "framework": config.framework, "train_loss": loss,
                      "train_acc": accuracy(predict_all(trainer.predict, data.x_train), data.y_train),
                      "test_acc": accuracy(predict_all(trainer.predict, data.x_test), data.y_test)}
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            with interrupts_deferred():  # a Ctrl-C from here on is raised once `last` names the new pair
                save_checkpoint(out, trainer.canonical_weights(), spec,
                                TrainState(config, epoch, history, trainer.optimizer_state()))
                last = (out, epoch)
            print(f"epoch {epoch:>3}/{config.epochs}  train loss {loss:.4f}  "
                  f"train acc {100 * record['train_acc']:6.2f}%  test acc {100 * record['test_acc']:6.2f}%  "
                  f"({record['seconds']:.1f} s)  -> {out}", flush=True)
    except KeyboardInterrupt:
        if last is not None:
            print(f"the last complete checkpoint is {last[0]} (epoch {last[1]}); continue with --resume {last[0]}",
                  file=sys.stderr)
        raise
    return history


def _train_epoch(trainer: Trainer, data: Dataset, config: TrainConfig, epoch: int,
                 last: tuple[Path, int] | None) -> float:
    """One epoch of SGD steps in the order of (seed, epoch), with a progress bar; the mean step loss."""
    from tqdm import tqdm

    steps = batches(epoch_order(config.seed, epoch - 1, len(data.y_train)), config.batch_size)
    done, total = (epoch - 1) * len(steps), config.epochs * len(steps)
    losses = []
    with tqdm(steps, desc=f"{config.framework} epoch {epoch}/{config.epochs}", unit="batch", leave=False,
              disable=None, file=sys.stderr) as bar:
        for step, idx in enumerate(bar, start=1):
            trainer.set_lr(learning_rate(config, done + step - 1, total))
            loss = trainer.step(data.x_train[idx], data.y_train[idx])
            if not math.isfinite(loss):
                kept = f"{last[0]} (epoch {last[1]})" if last is not None else "none written"
                raise UserError(f"non-finite loss ({loss}) at epoch {epoch}, step {step} of {len(steps)}: "
                                f"training diverged (try a lower --lr); last complete checkpoint: {kept}")
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    return float(np.mean(losses))
