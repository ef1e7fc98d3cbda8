"""`resnet-rosetta convert SRC DST`: any weight format to any other, through canonical weights."""
from __future__ import annotations

import argparse

from resnet_rosetta.common.formats import FORMATS
from resnet_rosetta.frameworks.weights import convert


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("convert", help="convert weights between formats",
                       description="Formats by extension, then by key names: .safetensors (canonical, or a bare timm "
                                   "or Hugging Face file), .pt/.pth (torchvision or timm), .pdparams (this suite's "
                                   "Paddle, paddle.vision or PaddleClas), .msgpack (flax), a folder (Hugging Face "
                                   "save_pretrained). The architecture is read off the keys and shapes.")
    p.add_argument("src", help="input weights file, or a Hugging Face folder")
    p.add_argument("dst", help="output weights file, or folder with --to hf (written atomically)")
    p.add_argument("--arch", help="architecture preset, when SRC carries no spec and it cannot be inferred")
    p.add_argument("--to", choices=FORMATS, help="output format when the extension holds several: .pdparams "
                                                 "paddle (default), paddle-vision or paddleclas; .pth torch or timm; "
                                                 "hf writes a Hugging Face folder (config.json + model.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --to hf folder")
    return p


def run(args: argparse.Namespace) -> int:
    print(convert(args.src, args.dst, args.arch, args.to, args.overwrite))
    return 0
