"""Framework-neutral pieces of training: initial weights, parameter-name mapping, metrics, and the
checkpoint pair that makes `train --resume` exact.

A training checkpoint is two files written together after every epoch:

    CKPT.safetensors        the canonical weights (parameters + running statistics, spec in the
                            header): loadable by `convert`, `forward`, `evaluate` like any other.
    CKPT.train.safetensors  the training state: the SGD momentum buffers under canonical names, and
                            in its header the run configuration, the number of completed epochs,
                            the per-epoch history and the SHA-256 of the weights file it belongs to.

The data order of an epoch is a pure function of (seed, epoch) (`datasets.epoch_order`) and
training draws no other random numbers, so (seed, epoch) is the whole RNG state; the learning rate is
a function of the global step (`learning_rate`). The weights file
is written first, then the state file; Ctrl-C is held back until both are on disk. A crash between
the two renames leaves loadable weights whose hash no longer matches the state; resume then refuses
instead of silently mixing epochs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from . import rules
from .atomic import atomic_path
from .canonical import Weights, canonical_shapes, few_keys, is_buffer, load_canonical, save_canonical
from .errors import UserError
from .spec import ResNetSpec

STATE_FORMAT = "resnet-rosetta-train-state"
STATE_VERSION = "1"
CHECKPOINT_SUFFIX = ".safetensors"
STATE_SUFFIX = ".train.safetensors"


# ---------------------------------------------------------------- initial weights

def initial_weights(spec: ResNetSpec, seed: int) -> Weights:
    """Fresh float32 weights drawn once in NumPy, so every framework starts from the same point.

    The distributions are torchvision's: convs Kaiming-normal (fan_out, gain sqrt 2), BN scale 1
    (0 on the last BN of each residual branch with `zero_init_residual`) and shift 0, running
    mean 0 and variance 1, fc weight and bias uniform in +-1/sqrt(fan_in) (torch.nn.Linear).
    """
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(spec.feature_dim)
    last_bn = "bn3" if spec.block == "bottleneck" else "bn2"
    out: Weights = {}
    for key, shape in canonical_shapes(spec).items():
        module, leaf = key.rsplit(".", 1)
        if key.startswith("fc."):
            arr = rng.uniform(-bound, bound, shape)
        elif len(shape) == 4:
            arr = rng.normal(0.0, np.sqrt(2.0 / (shape[0] * shape[2] * shape[3])), shape)
        elif leaf == "weight":
            zero = spec.zero_init_residual and module.startswith("layer") and module.endswith(last_bn)
            arr = np.zeros(shape) if zero else np.ones(shape)
        elif leaf == "running_var":
            arr = np.ones(shape)
        else:  # BN bias, running_mean
            arr = np.zeros(shape)
        out[key] = arr.astype(np.float32)
    return out


# ---------------------------------------------------------------- trainable parameters by name

def trainable_keys(spec: ResNetSpec) -> list[str]:
    """Canonical names of every trainable parameter (running statistics excluded), in execution order."""
    return [k for k in canonical_shapes(spec) if not is_buffer(k)]


def params_to_canonical(native: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str) -> Weights:
    """Per-parameter arrays (gradients, momentum buffers) under native names -> canonical names and layouts."""
    table = rules.key_map(spec, fmt)
    return {ck: table[ck][2](np.asarray(native[table[ck][0]])) for ck in trainable_keys(spec)}


def params_to_native(canonical: Mapping[str, np.ndarray], spec: ResNetSpec, fmt: str, source: str) -> Weights:
    """Canonical per-parameter arrays -> native names and layouts; strict about names and shapes."""
    keys = trainable_keys(spec)
    missing = [k for k in keys if k not in canonical]
    unexpected = [k for k in canonical if k not in set(keys)]
    if missing or unexpected:
        parts = ([f"missing keys {few_keys(missing)}"] if missing else []) + \
                ([f"unexpected keys {few_keys(unexpected)}"] if unexpected else [])
        raise UserError(f"{source}: does not match the parameters of {spec.name}: " + "; ".join(parts))
    shapes = canonical_shapes(spec)
    for k in keys:
        if tuple(canonical[k].shape) != shapes[k]:
            raise UserError(f"{source}: key {k}: expected shape {shapes[k]}, found {tuple(canonical[k].shape)}")
    table = rules.key_map(spec, fmt)
    return {table[k][0]: table[k][1](np.asarray(canonical[k], dtype=np.float32)) for k in keys}


def check_spec(found: ResNetSpec, expected: ResNetSpec, source: str) -> None:
    """Refuse a checkpoint whose architecture, classes, channels or input size differ from the run's."""
    fields = ("name", "block", "depths", "widths", "groups", "width_per_group", "stem", "stem_width",
              "num_classes", "in_channels", "input_size")
    diffs = [f"{f} {getattr(found, f)} (expected {getattr(expected, f)})"
             for f in fields if getattr(found, f) != getattr(expected, f)]
    if diffs:
        raise UserError(f"{source}: checkpoint is for a different model: " + ", ".join(diffs))


# ---------------------------------------------------------------- metrics

def predict_all(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits for every row of `x`, in batches of exactly `batch_size` (the last one padded
    with zeros and cut back), so a jit-compiling framework compiles one shape only."""
    out = []
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size]
        pad = np.zeros((batch_size - len(chunk), *x.shape[1:]), dtype=x.dtype)
        out.append(predict(np.concatenate([chunk, pad]))[:len(chunk)])
    return np.concatenate(out)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else 0.0


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def format_confusion(counts: np.ndarray, class_names: tuple[str, ...]) -> str:
    """A plain-text confusion matrix: rows are true classes, columns predicted (by index)."""
    width = max(5, len(str(counts.max())) + 1)
    name_w = max(len(n) for n in class_names) + 5
    lines = [" " * name_w + "".join(f"{j:>{width}}" for j in range(len(class_names))) + "   (predicted)"]
    for i, name in enumerate(class_names):
        lines.append(f"{i:>2} {name:<{name_w - 3}}" + "".join(f"{c:>{width}}" for c in counts[i]))
    return "\n".join(lines)


# ---------------------------------------------------------------- checkpoints

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


LR_SCHEDULES = ("cosine", "constant")


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of global step `step` (0-based): constant, or cosine from lr down to 0
    over the run's `total_steps`, per step (the decay also makes the final epochs calm, so runs
    in different frameworks end on comparable accuracies)."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


@dataclass
class TrainState:
    """What the canonical weights alone do not say: epochs done, history, momentum buffers."""

    config: TrainConfig
    epoch: int  # completed epochs
    history: list[dict[str, Any]] = field(default_factory=list)
    momentum: Weights = field(default_factory=dict)


def state_path(checkpoint: str | os.PathLike[str]) -> Path:
    """`run.safetensors` -> `run.train.safetensors`."""
    checkpoint = Path(checkpoint)
    if not checkpoint.name.endswith(CHECKPOINT_SUFFIX) or checkpoint.name.endswith(STATE_SUFFIX):
        raise UserError(f"{checkpoint}: a checkpoint name must end in {CHECKPOINT_SUFFIX} "
                        f"(and not in {STATE_SUFFIX}, which names its training state)")
    return checkpoint.with_name(checkpoint.name[: -len(CHECKPOINT_SUFFIX)] + STATE_SUFFIX)


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
    from safetensors.numpy import save_file

    path = Path(path)
    sidecar = state_path(path)
    momentum = {k: np.ascontiguousarray(state.momentum[k], dtype=np.float32) for k in trainable_keys(spec)}
    with interrupts_deferred():
        save_canonical(path, weights, spec)
        meta = {"format": STATE_FORMAT, "format_version": STATE_VERSION,
                "config": json.dumps(dataclasses.asdict(state.config), sort_keys=True),
                "epoch": str(state.epoch), "history": json.dumps(state.history),
                "weights_file": path.name, "weights_sha256": _sha256(path)}
        with atomic_path(sidecar) as tmp:
            save_file(momentum, str(tmp), metadata=meta)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[Weights, ResNetSpec, TrainState]:
    """Canonical weights, their spec and the training state beside them; refuses mismatched pairs."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    sidecar = state_path(path)
    weights, spec = load_canonical(path)
    if spec is None:
        raise UserError(f"{path}: carries no spec in its header, so it was not written by `train`")
    if not sidecar.is_file():
        raise UserError(f"{path}: no training state {sidecar.name} beside it; it can be evaluated or "
                        "converted, but not resumed")
    try:
        with safe_open(str(sidecar), framework="np") as f:
            meta = f.metadata() or {}
            momentum = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise UserError(f"{sidecar}: not a readable training state ({' '.join(str(exc).split())})") from None
    if meta.get("format") != STATE_FORMAT or meta.get("format_version") != STATE_VERSION:
        raise UserError(f"{sidecar}: not a version-{STATE_VERSION} {STATE_FORMAT} file")
    if meta.get("weights_sha256") != _sha256(path):
        raise UserError(f"{sidecar} belongs to another version of {path.name} (the run stopped between "
                        f"writing the two); the weights load, but the run cannot be resumed from them")
    try:
        config = TrainConfig(**json.loads(meta["config"]))
        state = TrainState(config, int(meta["epoch"]), json.loads(meta["history"]), momentum)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{sidecar}: damaged header ({exc})") from None
    return weights, spec, state
