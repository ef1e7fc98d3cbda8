"""`resnet-rosetta convert SRC DST`: any weight format to any other, through canonical weights."""
from __future__ import annotations

import argparse

from resnet_rosetta.common.formats import FORMATS
from resnet_rosetta.frameworks.weights import convert


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("convert", help="convert weights between formats",
                       description="Formats by extension: .safetensors (canonical), .pt/.pth (torch), "
                                   ".pdparams (paddle, or paddle-vision with --to), .msgpack (flax).")
    p.add_argument("src", help="input weights file")
    p.add_argument("dst", help="output weights file (written atomically)")
    p.add_argument("--arch", help="architecture preset, when SRC carries no spec and it cannot be inferred")
    p.add_argument("--to", choices=FORMATS, help="output format; chooses between the two .pdparams flavours "
                                                 "(default: paddle, this suite's Paddle model)")
    return p


def run(args: argparse.Namespace) -> int:
    print(convert(args.src, args.dst, args.arch, args.to))
    return 0
