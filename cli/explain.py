"""`resnet-rosetta explain [TOPIC]`: PyTorch vs Paddle vs Flax, side by side, one difference at a time.

    resnet-rosetta explain                          list the topics
    resnet-rosetta explain batchnorm                one topic: facts, code from the source, note, figures
    resnet-rosetta explain block --arch resnet18    the residual block of an architecture
    resnet-rosetta explain --measure docs/differences.json --markdown docs/differences.md
                                                    re-measure the figures (minutes), regenerate the guide
"""
from __future__ import annotations

import argparse
from pathlib import Path

from resnet_rosetta.guide.explain import DEFAULT_ARCH, DEFAULT_FIGURES, explain
from resnet_rosetta.guide.topics import TOPICS


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", help="the differences between PyTorch, Paddle and Flax, side by side",
                       description="Facts, code read from this repository's source, and measured figures, "
                                   "one topic at a time. Without TOPIC: list the topics.")
    p.add_argument("topic", nargs="?", metavar="TOPIC", help="one of: " + ", ".join(t.name for t in TOPICS))
    p.add_argument("--arch", help=f"architecture whose residual block `block` shows (default {DEFAULT_ARCH})")
    p.add_argument("--width", type=int, help="output width in columns (default: the terminal's)")
    p.add_argument("--figures", type=Path, default=DEFAULT_FIGURES,
                   help="measured figures to quote (default: docs/differences.json)")
    p.add_argument("--measure", type=Path, metavar="JSON",
                   help="measure the figures, each framework in its own process (minutes), and write JSON")
    p.add_argument("--markdown", type=Path, metavar="MD", help="write the whole guide as Markdown")
    return p


def run(args: argparse.Namespace) -> int:
    return explain(args.topic, arch=args.arch, width=args.width, figures=args.figures, measure=args.measure,
                   markdown=args.markdown)
