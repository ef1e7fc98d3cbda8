"""The checkpoint pair that makes `train --resume` exact, written together after every epoch:

    CKPT.safetensors        the canonical weights (parameters + running statistics, spec in the
                            header): loadable by `convert`, `forward`, `evaluate` like any other.
    CKPT.train.safetensors  the training state: the SGD momentum buffers under canonical names, and
                            in its header the run configuration, the number of completed epochs,
                            the per-epoch history and the SHA-256 of the weights file it belongs to.

The data order of an epoch is a pure function of (seed, epoch) and the learning rate one of the
global step, so nothing else needs saving. The weights are written first, then the state; Ctrl-C
is held back until both are on disk. A crash between the two leaves loadable weights whose hash no
longer matches the state; resume then refuses instead of silently mixing epochs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np

from resnet_rosetta.common.atomic import save_safetensors
from resnet_rosetta.common.canonical import Weights, load_canonical, read_safetensors, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.common.training import trainable_keys
from .config import TrainConfig, check_config

STATE_FORMAT = "resnet-rosetta-train-state"
STATE_VERSION = "1"
CHECKPOINT_SUFFIX = ".safetensors"
STATE_SUFFIX = ".train.safetensors"


@dataclass
class TrainState:
    """What the canonical weights alone do not say: epochs done, history, momentum buffers."""

    config: TrainConfig
    epoch: int  # completed epochs
    history: list[dict[str, Any]] = field(default_factory=list)
    momentum: Weights = field(default_factory=dict)


class Resume(NamedTuple):
    """A loaded checkpoint pair to continue from."""

    path: Path
    weights: dict[str, np.ndarray]
    spec: ResNetSpec
    state: TrainState


def state_path(checkpoint: str | os.PathLike[str]) -> Path:
    """`run.safetensors` -> `run.train.safetensors`."""
    checkpoint = Path(checkpoint)
    if not checkpoint.name.endswith(CHECKPOINT_SUFFIX) or checkpoint.name.endswith(STATE_SUFFIX):
        raise UserError(f"{checkpoint}: a checkpoint name must end in {CHECKPOINT_SUFFIX} "
                        f"(and not in {STATE_SUFFIX}, which names its training state)")
    return checkpoint.with_name(checkpoint.name[: -len(CHECKPOINT_SUFFIX)] + STATE_SUFFIX)


def default_out(config: TrainConfig, with_framework: bool) -> Path:
    """runs/<dataset>-<arch>[-<framework>].safetensors"""
    suffix = f"-{config.framework}" if with_framework else ""
    return Path("runs") / f"{config.dataset}-{config.arch}{suffix}{CHECKPOINT_SUFFIX}"


def check_spec(found: ResNetSpec, expected: ResNetSpec, source: str) -> None:
    """Refuse a checkpoint whose architecture, classes, channels or input size differ from the run's."""
    fields = ("name", "block", "depths", "widths", "groups", "width_per_group", "stem", "stem_width", "downsample",
              "num_classes", "in_channels", "input_size")
    diffs = [f"{f} {getattr(found, f)} (expected {getattr(expected, f)})"
             for f in fields if getattr(found, f) != getattr(expected, f)]
    if diffs:
        raise UserError(f"{source}: checkpoint is for a different model: " + ", ".join(diffs))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_deferring = False  # an interrupts_deferred block is active (inner blocks then leave the handler alone)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) inside the block and raise it once the outermost block is done."""
    global _deferring
    if _deferring or threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def save_checkpoint(path: str | os.PathLike[str], weights: Mapping[str, np.ndarray], spec: ResNetSpec,
                    state: TrainState) -> None:
    """Write the canonical weights, then the training state that points at them, each atomically."""
    path = Path(path)
    sidecar = state_path(path)
    momentum = {k: np.ascontiguousarray(state.momentum[k], dtype=np.float32) for k in trainable_keys(spec)}
    with interrupts_deferred():
        save_canonical(path, weights, spec)
        meta = {"format": STATE_FORMAT, "format_version": STATE_VERSION,
                "config": json.dumps(dataclasses.asdict(state.config), sort_keys=True),
                "epoch": str(state.epoch), "history": json.dumps(state.history),
                "weights_file": path.name, "weights_sha256": _sha256(path)}
        save_safetensors(sidecar, momentum, meta)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[Weights, ResNetSpec, TrainState]:
    """Canonical weights, their spec and the training state beside them; refuses mismatched pairs."""
    path = Path(path)
    sidecar = state_path(path)
    weights, spec = load_canonical(path)
    if spec is None:
        raise UserError(f"{path}: carries no spec in its header, so it was not written by `train`")
    if not sidecar.is_file():
        raise UserError(f"{path}: no training state {sidecar.name} beside it; it can be evaluated or "
                        "converted, but not resumed")
    momentum, meta = read_safetensors(sidecar, "training state")
    if meta.get("format") != STATE_FORMAT or meta.get("format_version") != STATE_VERSION:
        raise UserError(f"{sidecar}: not a version-{STATE_VERSION} {STATE_FORMAT} file")
    if meta.get("weights_sha256") != _sha256(path):
        raise UserError(f"{sidecar} belongs to another version of {path.name} (the run stopped between "
                        f"writing the two); the weights load, but the run cannot be resumed from them")
    try:
        config = TrainConfig(**json.loads(meta["config"]))
        check_config(config, sidecar)
        state = TrainState(config, int(meta["epoch"]), json.loads(meta["history"]), momentum)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{sidecar}: damaged header ({exc})") from None
    return weights, spec, state

