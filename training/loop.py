"""`resnet-rosetta train`: train on real images in one framework, or in several from the same start.

One run: initial weights drawn once in NumPy from --seed (identical in every framework), batches
in the order `datasets.epoch_order(seed, epoch)`, the framework's own SGD (`Trainer.CONVENTION`).
After every epoch: train loss (mean of the step losses, train mode), train and test accuracy
(eval mode, whole split) and a checkpoint pair (canonical weights + training state, see
common/training.py). `--resume CKPT` continues from the pair; it may switch --framework, since
weights and momentum buffers are both canonical.

`--compare torch,paddle,flax` runs the same command once per framework, each in its own process,
then writes a Markdown table and a PNG of the curves overlaid.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from resnet_rosetta.common import process
from resnet_rosetta.common.atomic import atomic_path, atomic_write_text
from resnet_rosetta.common.datasets import DATASETS, Dataset, batches, epoch_order, load_dataset
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.common.training import (CHECKPOINT_SUFFIX, LR_SCHEDULES, TrainConfig, TrainState, accuracy, check_spec,
                               initial_weights, interrupts_deferred, learning_rate, load_checkpoint, predict_all,
                               save_checkpoint, state_path)
from resnet_rosetta.frameworks import FRAMEWORKS

# Defaults measured to reach >= 97% digits test accuracy in every framework in well under 5 minutes
# on 2 CPU cores: resnet18_small at a quarter of torchvision's width (16, 32, 64, 128 channels),
# digits upscaled 8 -> 16 px (three stride-2 stages leave 2 x 2 for the last one).
DEFAULTS: dict[str, Any] = {"arch": "resnet18_small", "width": 16, "dataset": "digits", "epochs": 10,
                            "batch_size": 32, "lr": 0.05, "lr_schedule": "cosine", "momentum": 0.9,
                            "weight_decay": 1e-4, "seed": 0}
IMAGE_SIZE = {"digits": 16, "mnist": 28, "fashion-mnist": 28}
RESUMABLE = ("epochs", "framework", "data_dir")  # what --resume may change; the rest continues as stored


class Resume(NamedTuple):
    """A loaded checkpoint pair to continue from."""

    path: Path
    weights: dict[str, np.ndarray]
    spec: ResNetSpec
    state: TrainState


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train on digits / MNIST / Fashion-MNIST in one framework, or compare several",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--framework", choices=FRAMEWORKS, help="train in this framework")
    which.add_argument("--compare", type=_framework_list, metavar="FW,FW[,FW]",
                       help="train in each of these from the same initial weights and compare the curves")
    p.add_argument("--arch", help=f"architecture preset (default {DEFAULTS['arch']}); in_channels and "
                                  "num_classes follow the dataset")
    p.add_argument("--width", type=int, help="channels of the first stage; the stem and every stage scale "
                                             f"with it (default {DEFAULTS['width']}; torchvision's is 64)")
    p.add_argument("--dataset", choices=DATASETS, help=f"default {DEFAULTS['dataset']} (embedded, no download)")
    p.add_argument("--data-dir", type=Path, help="folder with the MNIST / Fashion-MNIST IDX files "
                                                 "(DIR/ or DIR/<MNIST|FashionMNIST>/raw/)")
    p.add_argument("--image-size", type=int, help="resize images to N x N, the model's input size "
                                                  "(default 16 for digits, 28 for MNIST and Fashion-MNIST)")
    p.add_argument("--epochs", type=int, help=f"total epochs (default {DEFAULTS['epochs']}); with --resume, may "
                                              "be raised to train further (the cosine schedule then stretches)")
    p.add_argument("--batch-size", type=int, help=f"default {DEFAULTS['batch_size']}")
    p.add_argument("--lr", type=float, help=f"learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="per-step cosine decay from --lr to 0 over the run, "
                                                               f"or constant (default {DEFAULTS['lr_schedule']})")
    p.add_argument("--momentum", type=float, help=f"default {DEFAULTS['momentum']}")
    p.add_argument("--weight-decay", type=float,
                   help=f"L2 added to every gradient (default {DEFAULTS['weight_decay']})")
    p.add_argument("--seed", type=int, help=f"initial weights and data order (default {DEFAULTS['seed']})")
    p.add_argument("--out", type=Path, metavar="CKPT.safetensors",
                   help="checkpoint to write every epoch (default runs/<dataset>-<arch>-<framework>.safetensors; "
                        "with --compare, -<framework> is added to the name)")
    p.add_argument("--resume", type=Path, metavar="CKPT.safetensors",
                   help="continue the run that wrote this checkpoint (it needs its .train.safetensors beside it)")
    return p


def _framework_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected two or more distinct frameworks out of {', '.join(FRAMEWORKS)}")
    return names


def run(args: argparse.Namespace) -> int:
    if args.compare:
        if args.resume:
            raise UserError("--resume continues one run; use it with --framework, not --compare")
        return run_compare(args)
    if args.resume:
        resume = Resume(args.resume, *load_checkpoint(args.resume))
        train(_resumed_config(args, resume.state.config), args.out or args.resume, resume)
    else:
        config = _config(args, args.framework)
        train(config, args.out or _default_out(config, with_framework=True))
    return 0


def _config(args: argparse.Namespace, framework: str) -> TrainConfig:
    values = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in DEFAULTS.items()}
    if values["dataset"] == "digits" and args.data_dir is not None:
        raise UserError("--data-dir is for mnist and fashion-mnist; digits is embedded")
    config = TrainConfig(framework=framework, data_dir=str(args.data_dir) if args.data_dir else None,
                         image_size=args.image_size or IMAGE_SIZE[values["dataset"]], **values)
    for name in ("epochs", "batch_size", "image_size", "width"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, found {getattr(config, name)}")
    if config.batch_size < 2:
        raise UserError("--batch-size must be at least 2 (batch norm needs batch statistics)")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise UserError(f"--lr must be a positive number, found {config.lr}")
    return config


def _resumed_config(args: argparse.Namespace, stored: TrainConfig) -> TrainConfig:
    """The stored configuration; --epochs, --framework and --data-dir may change, anything else given must agree."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if "data_dir" in given:
        given["data_dir"] = str(given["data_dir"])
    conflicts = [f"--{k.replace('_', '-')} {v} (the run used {getattr(stored, k)})"
                 for k, v in given.items() if k not in RESUMABLE and v != getattr(stored, k)]
    if conflicts:
        raise UserError(f"{args.resume}: --resume continues with the stored settings; conflicting: "
                        + ", ".join(conflicts))
    return dataclasses.replace(stored, **{k: v for k, v in given.items() if k in RESUMABLE})


def _default_out(config: TrainConfig, with_framework: bool) -> Path:
    suffix = f"-{config.framework}" if with_framework else ""
    return Path("runs") / f"{config.dataset}-{config.arch}{suffix}{CHECKPOINT_SUFFIX}"


def run_spec(config: TrainConfig, in_channels: int, num_classes: int) -> ResNetSpec:
    """The preset scaled to `config.width` and adapted to the data: channels, classes, input size."""
    preset = get_spec(config.arch)
    base = preset.widths[0]
    return preset.replace(in_channels=in_channels, num_classes=num_classes, input_size=config.image_size,
                          widths=tuple(w * config.width // base for w in preset.widths),
                          stem_width=preset.stem_width * config.width // base)


def train(config: TrainConfig, out: Path, resume: Resume | None = None) -> list[dict[str, Any]]:
    """Train up to `config.epochs` epochs (from scratch or from `resume`), checkpointing to `out` every epoch."""
    from resnet_rosetta import frameworks

    state_path(out)  # validates the name before any work
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
    trainer = frameworks.load(config.framework, "training").Trainer(
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


def _train_epoch(trainer: Any, data: Dataset, config: TrainConfig, epoch: int,
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


# ---------------------------------------------------------------- compare

def run_compare(args: argparse.Namespace) -> int:
    """Each framework in its own process (same seed, so the same initial weights), then table + curves."""
    config = _config(args, args.compare[0])
    base = args.out or _default_out(config, with_framework=False)
    state_path(base)
    stem = base.with_name(base.name[: -len(CHECKPOINT_SUFFIX)])
    runs: dict[str, dict[str, Any]] = {}
    for fw in args.compare:
        out = stem.with_name(f"{stem.name}-{fw}{CHECKPOINT_SUFFIX}")
        argv = ["train", "--out", str(out), *_options(dataclasses.replace(config, framework=fw))]
        cpu_start = _children_cpu()
        outcome = process.run_module("resnet_rosetta.cli.main", argv, inherit_output=True)
        code, wall, cpu = outcome.returncode, outcome.wall_s, _children_cpu() - cpu_start
        if code != 0:
            raise UserError(f"the {fw} run failed (exit status {code}); its message is above")
        runs[fw] = {"history": load_checkpoint(out)[2].history, "wall": wall, "cpu": cpu}
    table = compare_table(runs)
    md_path, png_path = stem.with_name(f"{stem.name}-compare.md"), stem.with_name(f"{stem.name}-compare.png")
    atomic_write_text(md_path, f"# {config.dataset}, {config.arch}, seed {config.seed}\n\n{table}\n")
    plot_curves(runs, png_path, title=f"{config.dataset}, {config.arch}, same initial weights (seed {config.seed})")
    print(table)
    print(f"wrote {md_path} and {png_path}")
    return 0


def _children_cpu() -> float:
    """CPU seconds (user + system) used by finished child processes: on a shared machine this says
    more about a run's cost than its wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _options(config: TrainConfig) -> list[str]:
    """The command-line options that reproduce `config` (every field is an option of the same name)."""
    options = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is not None:
            options += [f"--{f.name.replace('_', '-')}", repr(value) if isinstance(value, float) else str(value)]
    return options


def compare_table(runs: dict[str, dict[str, Any]]) -> str:
    """Markdown: the last epoch of every run, and the spread of the final test accuracies."""
    lines = ["| framework | epochs | train loss | train acc | test acc | epochs' time (s) | wall time (s) | "
             "CPU time (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for fw, r in runs.items():
        last = r["history"][-1]
        lines.append(f"| {fw} | {last['epoch']} | {last['train_loss']:.4f} | {100 * last['train_acc']:.2f}% | "
                     f"{100 * last['test_acc']:.2f}% | {sum(h['seconds'] for h in r['history']):.1f} | "
                     f"{r['wall']:.1f} | {r['cpu']:.1f} |")
    finals = [100 * r["history"][-1]["test_acc"] for r in runs.values()]
    lines.append(f"\nfinal test accuracy spread (max - min): {max(finals) - min(finals):.2f} percentage points")
    return "\n".join(lines)


def plot_curves(runs: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Train loss, train accuracy and test accuracy per epoch, one line per framework, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [("train_loss", "train loss", 1.0), ("train_acc", "train accuracy (%)", 100.0),
              ("test_acc", "test accuracy (%)", 100.0)]
    styles = ["-o", "--s", ":^", "-.d"]
    for (key, label, scale), ax in zip(panels, axes):
        for (fw, r), style in zip(runs.items(), styles):
            ax.plot([h["epoch"] for h in r["history"]], [scale * h[key] for h in r["history"]], style,
                    label=fw, markersize=4, alpha=0.85)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
