"""`resnet-rosetta list`: every preset with its parameter count and MACs at its default input size."""
from __future__ import annotations

import argparse
import json

from resnet_rosetta.common.counting import macs, parameter_count
from resnet_rosetta.common.spec import PRESETS


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list the architecture presets")
    p.add_argument("--json", action="store_true", help="print one JSON object per preset instead of a table")
    return p


def rows() -> list[dict[str, object]]:
    return [{"name": s.name, "block": s.block, "depths": list(s.depths), "groups": s.groups,
             "width_per_group": s.width_per_group, "stem": s.stem, "downsample": s.downsample, "num_classes": s.num_classes,
             "input_size": s.input_size, "parameters": parameter_count(s), "gmacs": macs(s) / 1e9}
            for s in PRESETS]


def run(args: argparse.Namespace) -> int:
    table = rows()
    if args.json:
        for row in table:
            print(json.dumps(row))
        return 0
    print(f"{'name':<18} {'block':<10} {'depths':<13} {'stem':<8} {'classes':>7} {'input':>5} "
          f"{'parameters':>12} {'GMACs':>7}")
    for r in table:
        depths = "-".join(str(d) for d in r["depths"])  # type: ignore[union-attr]
        print(f"{r['name']:<18} {r['block']:<10} {depths:<13} {r['stem']:<8} {r['num_classes']:>7} "
              f"{r['input_size']:>5} {r['parameters']:>12,} {r['gmacs']:>7.2f}")
    return 0
