"""The checkpoint pair without the CLI: round trip, naming, refusals, and Ctrl-C held back while writing."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.training import trainable_keys
from resnet_rosetta.training.checkpoint import (TrainState, check_spec, interrupts_deferred, load_checkpoint,
                                                save_checkpoint, state_path)
from resnet_rosetta.training.config import SETTINGS, new_config

SPEC = get_spec("resnet18_small").replace(in_channels=1, widths=(4, 8, 8, 16), stem_width=4, input_size=8)


def _state(epoch: int = 3) -> TrainState:
    rng = np.random.default_rng(1)
    momentum = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in random_weights(SPEC).items()
                if k in set(trainable_keys(SPEC))}
    config = new_config(dict.fromkeys(SETTINGS), "torch")
    return TrainState(config, epoch, [{"epoch": e, "test_acc": 0.5} for e in range(1, epoch + 1)], momentum)


def test_round_trip(tmp_path: Path) -> None:
    ckpt, weights, state = tmp_path / "run.safetensors", random_weights(SPEC, seed=2), _state()
    save_checkpoint(ckpt, weights, SPEC, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors", "run.train.safetensors"]
    loaded_weights, spec, loaded = load_checkpoint(ckpt)
    assert spec == SPEC and loaded.config == state.config and loaded.epoch == 3 and loaded.history == state.history
    for key, value in weights.items():
        np.testing.assert_array_equal(loaded_weights[key], value, err_msg=key)
    assert set(loaded.momentum) == set(state.momentum)
    for key, value in state.momentum.items():
        np.testing.assert_array_equal(loaded.momentum[key], value, err_msg=key)


def test_state_path_names() -> None:
    assert state_path("a/run.safetensors") == Path("a/run.train.safetensors")
    for bad in ("run.pt", "run.train.safetensors"):
        with pytest.raises(UserError, match="a checkpoint name must end in .safetensors"):
            state_path(bad)


def test_refusals_name_the_file(tmp_path: Path) -> None:
    bare = tmp_path / "bare.safetensors"
    save_canonical(bare, random_weights(SPEC), SPEC)
    with pytest.raises(UserError, match="no training state bare.train.safetensors beside it"):
        load_checkpoint(bare)

    ckpt = tmp_path / "run.safetensors"
    save_checkpoint(ckpt, random_weights(SPEC), SPEC, _state())
    save_canonical(ckpt, random_weights(SPEC, seed=5), SPEC)  # weights replaced behind the state's back
    with pytest.raises(UserError, match="belongs to another version of run.safetensors"):
        load_checkpoint(ckpt)

    state_path(ckpt).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="not a readable training state"):
        load_checkpoint(ckpt)


def test_check_spec_lists_every_difference() -> None:
    check_spec(SPEC, SPEC, "x")
    with pytest.raises(UserError, match=r"^x: checkpoint is for a different model: num_classes 7 \(expected 10\), "
                                        r"input_size 16 \(expected 8\)$"):
        check_spec(SPEC.replace(num_classes=7, input_size=16), SPEC, "x")


def test_interrupts_are_deferred_while_a_checkpoint_is_written() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            with interrupts_deferred():  # nested: raised once, after the outer block
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached.append("inner")
            reached.append("outer")
    assert reached == ["inner", "outer"]
