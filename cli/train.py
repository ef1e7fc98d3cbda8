"""`resnet-rosetta train`: train on real images in one framework, or in several from the same start.

One run: initial weights drawn once in NumPy from --seed (identical in every framework), batches
in the order `datasets.epoch_order(seed, epoch)`, the framework's own SGD (`Trainer.CONVENTION`).
After every epoch: train loss (mean of the step losses, train mode), train and test accuracy
(eval mode, whole split) and a checkpoint pair (canonical weights + training state, see
training/checkpoint.py). `--resume CKPT` continues from the pair; it may switch --framework, since
weights and momentum buffers are both canonical.

`--compare torch,paddle,flax` runs the same command once per framework, each in its own process,
then writes a Markdown table and a PNG of the curves overlaid.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from resnet_rosetta.training.datasets import DATASETS
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.training.command import train_command
from resnet_rosetta.training.config import DEFAULTS, LR_SCHEDULES, SETTINGS


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
    settings = {name: getattr(args, name) for name in SETTINGS}
    return train_command(settings, compare=args.compare, out=args.out, resume=args.resume)
