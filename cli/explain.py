"""`resnet-rosetta explain [TOPIC]`: PyTorch vs Paddle vs Flax, side by side, one difference at a time.

    resnet-rosetta explain                          list the topics
    resnet-rosetta explain batchnorm                one topic: facts, code from the source, note, figures
    resnet-rosetta explain block --arch resnet18    the residual block of an architecture
    resnet-rosetta explain --measure docs/differences.json --markdown docs/differences.md
                                                    re-measure the figures (minutes), regenerate the guide
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.guide.topics import TOPICS, get_topic

DEFAULT_FIGURES = Path(__file__).resolve().parent.parent / "docs" / "differences.json"
DEFAULT_ARCH = "resnet50"


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
    from resnet_rosetta.guide.render import load_figures, render_markdown, render_text

    if args.topic is not None and (args.measure or args.markdown):
        raise UserError("give a TOPIC or --measure/--markdown, not both")
    if args.measure:
        from resnet_rosetta.guide.measure import measure

        measure(args.measure)
        print(f"wrote {args.measure}")
    figures = load_figures(args.measure or args.figures)
    if args.markdown:
        if figures is None:
            raise UserError(f"no measured figures at {args.figures}; run `resnet-rosetta explain --measure "
                            f"{args.figures}` first")
        atomic_write_text(args.markdown, render_markdown(figures))
        print(f"wrote {args.markdown}")
    if args.measure or args.markdown:
        return 0
    if args.topic is None:
        print("topics (resnet-rosetta explain TOPIC):")
        for t in TOPICS:
            print(f"  {t.name:<16} {t.title}: {t.summary}")
        return 0
    topic = get_topic(args.topic)
    if args.arch is not None and not topic.per_block:
        raise UserError(f"--arch applies to the block topic only, not to {topic.name}")
    width = args.width or shutil.get_terminal_size((120, 40)).columns
    print(render_text(topic, get_spec(args.arch or DEFAULT_ARCH), width, figures), end="")
    return 0
