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
    check_config(config)
    return config


_INTS = {"epochs": (1, 10**6), "batch_size": (2, 10**6), "image_size": (1, 4096), "width": (1, 4096),
         "seed": (0, 2**32 - 1)}
_FLOATS = {"lr": (0.0, False, math.inf), "momentum": (0.0, True, 1.0), "weight_decay": (0.0, True, math.inf)}


def check_config(config: TrainConfig, source: Path | None = None) -> None:
    """Every setting of the right type, finite and in range: the command line's and, with `source`,
    the one stored in a training state (so `--resume` trusts nothing it reads)."""
    def name(field: str) -> str:
        return f"{source}: stored setting {field}" if source else f"--{field.replace('_', '-')}"

    for field, (low, high) in _INTS.items():
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            extra = " (batch norm needs batch statistics)" if field == "batch_size" else ""
            raise UserError(f"{name(field)} must be at least {low}{extra}, found {value!r}" if
                            isinstance(value, int) and not isinstance(value, bool) and value < low else
                            f"{name(field)} must be an integer in [{low}, {high}]{extra}, found {value!r}")
    for field, (low, closed_low, high) in _FLOATS.items():
        value = getattr(config, field)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if field == "lr" and not (number and math.isfinite(value) and value > 0):
            raise UserError(f"{name(field)} must be a positive number, found {value!r}")
        if not (number and math.isfinite(value) and (value >= low if closed_low else value > low)
                and (value < high or math.isinf(high))):
            raise UserError(f"{name(field)} must be a finite number in [{low:g}, {high:g}), found {value!r}")
    choices = {"lr_schedule": LR_SCHEDULES, "dataset": tuple(IMAGE_SIZE)}
    for field, allowed in choices.items():
        if getattr(config, field) not in allowed:
            raise UserError(f"{name(field)} must be one of {', '.join(allowed)}, found {getattr(config, field)!r}")
    for field in ("framework", "arch"):
        if not isinstance(getattr(config, field), str):
            raise UserError(f"{name(field)} must be a name, found {getattr(config, field)!r}")
    if config.data_dir is not None and not isinstance(config.data_dir, str):
        raise UserError(f"{name('data_dir')} must be a path, found {config.data_dir!r}")


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
    config = dataclasses.replace(stored, **{k: v for k, v in given.items() if k in RESUMABLE})
    check_config(config)
    return config


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
