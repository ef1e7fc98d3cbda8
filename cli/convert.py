"""`resnet-rosetta convert SRC DST`: any weight format to any other, through canonical weights."""
from __future__ import annotations

import argparse

from .weights_io import FORMATS, format_for_output, read_weights, write_weights


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
    fmt = format_for_output(args.dst, args.to)
    weights, spec, src_fmt = read_weights(args.src, args.arch)
    write_weights(args.dst, weights, spec, fmt)
    print(f"{args.src} ({src_fmt}) -> {args.dst} ({fmt}): {spec.name}, {len(weights)} tensors")
    return 0
