"""`resnet-rosetta forward`: run one checkpoint in one framework on an NCHW float32 .npy batch."""
from __future__ import annotations

import argparse

from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.frameworks.forward import forward_file


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("forward", help="run a checkpoint in one framework (eval mode)")
    p.add_argument("--framework", required=True, choices=FRAMEWORKS)
    p.add_argument("--weights", required=True, help="weights in any supported format")
    p.add_argument("--input", required=True, help="NCHW float32 batch (.npy)")
    p.add_argument("--output", required=True, help="logits (N, num_classes) as .npy; with --stages an .npz")
    p.add_argument("--arch", help="architecture preset, when the weights carry no spec")
    p.add_argument("--stages", action="store_true", help="write every named stage output (NCHW) to an .npz")
    return p


def run(args: argparse.Namespace) -> int:
    print(forward_file(args.framework, args.weights, args.input, args.output, args.arch, args.stages))
    return 0
