"""`resnet-rosetta parity`: port one set of weights to every framework and compare them all."""
from __future__ import annotations

import argparse
import json
import sys

from .. import frameworks
from ..common.atomic import atomic_write_text
from ..common.errors import UserError
from ..common.spec import get_spec

DEFAULT_ARCHS = ("resnet18", "resnet50")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("parity", help="compare every framework with each other and a float64 oracle")
    p.add_argument("--arch", action="append", help="preset(s) to check, repeatable or comma-separated "
                                                   f"(default: {', '.join(DEFAULT_ARCHS)})")
    p.add_argument("--frameworks", default=",".join(frameworks.FRAMEWORKS), help="comma-separated")
    p.add_argument("--size", type=int, help="input height and width (default: the preset's input size)")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default 0)")
    p.add_argument("--weights", help="check this checkpoint (any format) instead of seeded random weights")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown tables")
    return p


def run(args: argparse.Namespace) -> int:
    from ..parity import engine, report
    from .weights_io import read_weights

    names = _csv(",".join(args.frameworks.split(",")))
    for name in names:
        if name not in frameworks.FRAMEWORKS:
            raise UserError(f"unknown framework {name!r}; known: {', '.join(frameworks.FRAMEWORKS)}")
    if args.batch < 1 or (args.size is not None and args.size < 8):
        raise UserError("--batch must be >= 1 and --size >= 8")
    archs = _csv(",".join(args.arch)) if args.arch else list(DEFAULT_ARCHS)
    cases = []
    if args.weights:
        if args.arch and len(archs) != 1:
            raise UserError("--weights takes at most one --arch")
        weights, spec, _ = read_weights(args.weights, archs[0] if args.arch else None)
        cases.append(engine.ParityCase.seeded(spec, args.size or spec.input_size, args.batch, args.seed, weights))
    else:
        for arch in archs:
            spec = get_spec(arch)
            cases.append(engine.ParityCase.seeded(spec, args.size or spec.input_size, args.batch, args.seed))

    checks = engine.CHECKS
    numerics, errors = {}, {}
    for name in names:
        numerics[name] = frameworks.load(name).parity_numerics(args.seed)
    comparisons = []
    for case in cases:
        results = {engine.ORACLE: engine.oracle_outputs(case, checks)}
        for name in names:
            results[name] = engine.framework_outputs(name, case, checks)
        comparisons += engine.compare_participants(case.spec.name, results)
    settings = {"archs": [c.spec.name for c in cases], "size": [c.x.shape[-1] for c in cases],
                "batch": args.batch, "seed": args.seed, "dtype": "fp32", "checks": list(checks),
                "isolate": False, "weights": args.weights}
    doc = report.to_json(comparisons, settings, numerics, errors)
    print(report.terminal(comparisons))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, report.markdown(doc))
    ok = doc["passed"]
    print(f"\nparity: {'PASS' if ok else 'FAIL'}", file=sys.stdout)
    return 0 if ok else 1
