"""`resnet-rosetta`: one entry point, one module per subcommand (`cli/<command>.py`).

Each command module defines `add_parser(subparsers)` and `run(args) -> int`. User errors
(`UserError`) print one line on stderr and exit with status 2; checks that fail exit with 1; Ctrl-C
exits 130 and SIGTERM 143, both after every temporary file is removed (SIGTERM becomes an exception).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import NoReturn

from resnet_rosetta.common.errors import Terminated, UserError, one_line, take_notes

COMMANDS = ("list", "convert", "forward", "parity", "explain", "bench", "report", "train", "evaluate")


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (`resnet-rosetta convert: error: ...`, exit 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="resnet-rosetta",
        description="ResNet in PyTorch, Paddle and Flax from one spec: port weights, check parity, benchmark.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__package__}.{name.replace('-', '_')}")
        module.add_parser(sub).set_defaults(handler=module.run)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UserError as exc:  # an option's value refused by its type (common/options.py)
        command = next((a for a in (sys.argv[1:] if argv is None else argv) if a in COMMANDS), "")
        print(f"resnet-rosetta {command}: error: {one_line(str(exc))}".replace(" :", ":"), file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse: --help (0) or a one-line usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    take_notes()
    try:
        status = int(args.handler(args) or 0)
        for line in take_notes():
            print(f"resnet-rosetta {args.command}: note: {one_line(line)}", file=sys.stderr)
        return status
    except UserError as exc:
        take_notes()  # a refusal is one line: what was noted on the way does not matter any more
        print(f"resnet-rosetta {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resnet-rosetta {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `resnet-rosetta list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 128 + signal.SIGPIPE
    except Terminated:
        print(f"resnet-rosetta {args.command}: terminated", file=sys.stderr)
        return 143
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
