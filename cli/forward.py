"""`resnet-rosetta forward`: run one checkpoint in one framework on an NCHW float32 .npy batch."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common.atomic import atomic_path
from resnet_rosetta.common.errors import UserError
from .weights_io import read_weights


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("forward", help="run a checkpoint in one framework (eval mode)")
    p.add_argument("--framework", required=True, choices=frameworks.FRAMEWORKS)
    p.add_argument("--weights", required=True, help="weights in any supported format")
    p.add_argument("--input", required=True, help="NCHW float32 batch (.npy)")
    p.add_argument("--output", required=True, help="logits (N, num_classes) as .npy; with --stages an .npz")
    p.add_argument("--arch", help="architecture preset, when the weights carry no spec")
    p.add_argument("--stages", action="store_true", help="write every named stage output (NCHW) to an .npz")
    return p


def load_batch(path: str, in_channels: int) -> np.ndarray:
    """An NCHW float32 batch from .npy, refusing pickles, wrong ranks and channel counts."""
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npy array ({exc})") from None
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise UserError(f"{path}: expected an NCHW batch with {in_channels} channels, found shape {x.shape}")
    if x.dtype != np.float32:
        raise UserError(f"{path}: expected dtype float32, found {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: input contains non-finite values")
    return x


def run(args: argparse.Namespace) -> int:
    out_ext = ".npz" if args.stages else ".npy"
    if Path(args.output).suffix.lower() != out_ext:
        raise UserError(f"{args.output}: expected a {out_ext} output path"
                        + (" (--stages writes an .npz)" if args.stages else ""))
    weights, spec, _ = read_weights(args.weights, args.arch)
    x = load_batch(args.input, spec.in_channels)
    fp32 = {k: v.astype(np.float32) for k, v in weights.items()}  # the models compute in fp32
    adapter = frameworks.load(args.framework).Adapter(spec, fp32)
    outputs = adapter.forward(x, train=False)
    with atomic_path(args.output) as tmp:
        with open(tmp, "wb") as f:
            if args.stages:
                np.savez(f, **outputs)
            else:
                np.save(f, outputs["logits"])
    print(f"{args.framework} {spec.name}: {x.shape} -> {args.output}")
    return 0
