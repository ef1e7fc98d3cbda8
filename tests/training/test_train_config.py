"""A run's configuration without the CLI: defaults, checks, what --resume may change, the lr schedule,
the scaled model and the options `--compare` hands each child."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.training.checkpoint import default_out
from resnet_rosetta.training.compare import command_options
from resnet_rosetta.training.config import DEFAULTS, SETTINGS, learning_rate, new_config, resumed_config, run_spec


def _given(**values: object) -> dict[str, object]:
    """Settings as the CLI hands them over: every name present, None where not given."""
    return {name: values.get(name) for name in SETTINGS}


def test_defaults_fill_what_is_not_given() -> None:
    config = new_config(_given(), "paddle")
    assert config.framework == "paddle" and config.data_dir is None
    assert {k: getattr(config, k) for k in DEFAULTS} == DEFAULTS
    assert config.image_size == 16  # digits' default size
    assert new_config(_given(dataset="mnist", data_dir=Path("d")), "torch").image_size == 28
    assert new_config(_given(dataset="mnist", data_dir=Path("d")), "torch").data_dir == "d"
    assert new_config(_given(lr=0.5, image_size=12), "torch").lr == 0.5


@pytest.mark.parametrize("given, message", [
    ({"data_dir": Path("d")}, "--data-dir is for mnist and fashion-mnist; digits is embedded"),
    ({"epochs": 0}, "--epochs must be at least 1, found 0"),
    ({"width": -2}, "--width must be at least 1, found -2"),
    ({"batch_size": 1}, r"--batch-size must be at least 2 \(batch norm needs batch statistics\)"),
    ({"lr": -1.0}, "--lr must be a positive number, found -1.0"),
    ({"lr": math.inf}, "--lr must be a positive number, found inf"),
])
def test_bad_settings_are_named(given: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        new_config(_given(**given), "torch")


def test_resume_changes_only_epochs_framework_and_data_dir() -> None:
    stored = new_config(_given(dataset="mnist", data_dir=Path("old")), "torch")
    resumed = resumed_config(_given(epochs=20, framework="flax", data_dir=Path("new"), arch=stored.arch),
                             stored, Path("run.safetensors"))
    assert resumed == dataclasses.replace(stored, epochs=20, framework="flax", data_dir="new")
    with pytest.raises(UserError, match=r"^run.safetensors: --resume continues with the stored settings; "
                                        r"conflicting: --lr 0.1 \(the run used 0.05\), --seed 3 \(the run used 0\)$"):
        resumed_config(_given(lr=0.1, seed=3), stored, Path("run.safetensors"))


def test_learning_rate_schedules() -> None:
    cosine = new_config(_given(lr=0.2), "torch")
    assert [learning_rate(cosine, s, 4) for s in range(4)] == pytest.approx([0.2, 0.1 + 0.1 / math.sqrt(2), 0.1,
                                                                              0.1 - 0.1 / math.sqrt(2)])
    assert learning_rate(cosine, 4, 4) == pytest.approx(0.0, abs=1e-15)
    constant = dataclasses.replace(cosine, lr_schedule="constant")
    assert {learning_rate(constant, s, 4) for s in range(4)} == {0.2}


def test_run_spec_scales_the_preset_and_fits_the_data() -> None:
    spec = run_spec(new_config(_given(width=16), "torch"), in_channels=1, num_classes=10)
    assert spec.widths == (16, 32, 64, 128) and spec.stem_width == 16
    assert (spec.in_channels, spec.num_classes, spec.input_size) == (1, 10, 16)


def test_default_out_and_the_options_each_compare_child_gets() -> None:
    config = new_config(_given(weight_decay=1e-5), "torch")
    assert default_out(config, with_framework=True) == Path("runs/digits-resnet18_small-torch.safetensors")
    assert default_out(config, with_framework=False) == Path("runs/digits-resnet18_small.safetensors")
    options = command_options(config)
    pairs = dict(zip(options[::2], options[1::2]))
    assert "--data-dir" not in pairs  # None: not passed
    assert pairs == {
        "--framework": "torch", "--arch": "resnet18_small", "--width": "16", "--dataset": "digits",
        "--image-size": "16", "--epochs": "10", "--batch-size": "32", "--lr": "0.05", "--momentum": "0.9",
        "--weight-decay": "1e-05", "--seed": "0", "--lr-schedule": "cosine"}
