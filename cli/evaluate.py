"""`resnet-rosetta evaluate`: test accuracy and confusion matrix of canonical weights in any framework.

The images are resized to the checkpoint's input size (its spec) and standardised as in `train`.
Writes PREFIX.txt (accuracy and confusion matrix), PREFIX.png (the confusion matrix) and
PREFIX.logits.npy (test-set logits, rows in dataset order) so runs in different frameworks can be
compared prediction by prediction.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from resnet_rosetta.training.datasets import DATASETS
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.training.evaluate import evaluate


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="accuracy and confusion matrix of canonical weights on a test set",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", required=True, choices=FRAMEWORKS)
    p.add_argument("--weights", required=True, type=Path, metavar="CKPT.safetensors", help="canonical weights")
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="default digits (embedded)")
    p.add_argument("--data-dir", type=Path, help="folder with the MNIST / Fashion-MNIST IDX files")
    p.add_argument("--arch", help="expected architecture; required only if the file carries no spec")
    p.add_argument("--image-size", type=int, help="input size, only for files without a spec "
                                                  "(default: train's default for the dataset)")
    p.add_argument("--out", type=Path, metavar="PREFIX",
                   help="output prefix (default: CKPT without .safetensors + .eval-<dataset>-<framework>)")
    return p


def run(args: argparse.Namespace) -> int:
    return evaluate(args.weights, args.framework, dataset=args.dataset, data_dir=args.data_dir, arch=args.arch,
                    image_size=args.image_size, out=args.out)
