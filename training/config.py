"""A run's configuration: the defaults, the user's settings checked into a `TrainConfig`, what
`--resume` may change, the learning-rate schedule and the model the run trains.

Settings are a mapping of `TrainConfig` field names to the user's values (None: not given).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, get_spec

# Small enough for every framework to train digits to >= 97% test accuracy in minutes on 2 CPU cores
# (figures: docs/training.md): resnet18_small at a quarter of torchvision's width (16, 32, 64, 128
# channels), digits upscaled 8 -> 16 px (three stride-2 stages leave 2 x 2 for the last one).
DEFAULTS: dict[str, Any] = {"arch": "resnet18_small", "width": 16, "dataset": "digits", "epochs": 10,
                            "batch_size": 32, "lr": 0.05, "lr_schedule": "cosine", "momentum": 0.9,
                            "weight_decay": 1e-4, "seed": 0}
IMAGE_SIZE = {"digits": 16, "mnist": 28, "fashion-mnist": 28}
LR_SCHEDULES = ("cosine", "constant")
RESUMABLE = ("epochs", "framework", "data_dir")  # what --resume may change; the rest continues as stored


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; stored in the training state so --resume continues it."""

    framework: str
    arch: str
    width: int  # channels of the first stage (the preset scaled by width / preset.widths[0])
    dataset: str
    data_dir: str | None
    image_size: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    seed: int
    lr_schedule: str  # "cosine" or "constant"


SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def new_config(given: Mapping[str, Any], framework: str) -> TrainConfig:
    """The configuration of a fresh run in `framework`: the given settings over `DEFAULTS`, checked."""
    values = {k: given.get(k) if given.get(k) is not None else v for k, v in DEFAULTS.items()}
    data_dir = given.get("data_dir")
    if values["dataset"] == "digits" and data_dir is not None:
        raise UserError("--data-dir is for mnist and fashion-mnist; digits is embedded")
    config = TrainConfig(framework=framework, data_dir=str(data_dir) if data_dir else None,
                         image_size=given.get("image_size") or IMAGE_SIZE[values["dataset"]], **values)
    for name in ("epochs", "batch_size", "image_size", "width"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, found {getattr(config, name)}")
    if config.batch_size < 2:
        raise UserError("--batch-size must be at least 2 (batch norm needs batch statistics)")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise UserError(f"--lr must be a positive number, found {config.lr}")
    return config


def resumed_config(given: Mapping[str, Any], stored: TrainConfig, source: Path) -> TrainConfig:
    """The stored configuration; --epochs, --framework and --data-dir may change, anything else given must agree."""
    given = {k: v for k, v in given.items() if k in SETTINGS and v is not None}
    if "data_dir" in given:
        given["data_dir"] = str(given["data_dir"])
    conflicts = [f"--{k.replace('_', '-')} {v} (the run used {getattr(stored, k)})"
                 for k, v in given.items() if k not in RESUMABLE and v != getattr(stored, k)]
    if conflicts:
        raise UserError(f"{source}: --resume continues with the stored settings; conflicting: "
                        + ", ".join(conflicts))
    return dataclasses.replace(stored, **{k: v for k, v in given.items() if k in RESUMABLE})


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of global step `step` (0-based): constant, or cosine from lr down to 0
    over the run's `total_steps`, per step (the decay also makes the final epochs calm, so runs
    in different frameworks end on comparable accuracies)."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def run_spec(config: TrainConfig, in_channels: int, num_classes: int) -> ResNetSpec:
    """The preset scaled to `config.width` and adapted to the data: channels, classes, input size."""
    preset = get_spec(config.arch)
    base = preset.widths[0]
    return preset.replace(in_channels=in_channels, num_classes=num_classes, input_size=config.image_size,
                          widths=tuple(w * config.width // base for w in preset.widths),
                          stem_width=preset.stem_width * config.width // base)
