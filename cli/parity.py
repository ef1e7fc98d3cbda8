"""`resnet-rosetta parity`: port one set of weights to every framework and compare them all.

In-process is the default: all three frameworks import side by side here, and it is 2-3x faster
than spawning workers (each worker pays the framework import and, for JAX, compilation again).
`--isolate` runs each framework in its own process (and, with `--python`, its own environment),
exchanging safetensors files; use it when frameworks clash in one process or live in different
environments.

Each comparison ends as one of: pass; FAIL (exit code 1); conditioning-limited (beyond the
tolerance but within 30 times the quantity's conditioning floor: how far the float64 oracle moves
when weights and inputs move by one unit round-off, e.g. train-mode resnet50 at batch 4), which
does not fail the run and is never shown as a pass. For grad, step and steps every framework
records the ReLU branches of each forward; where fp32 took the other branch at an input float64
puts within 1e-3 (relative) of zero, the oracle's backward follows it, since a gradient jumps
there (the report lists every such input), so the gradient bounds hold strictly; each of the
K steps starts the oracle from the framework's own state. `--dtype bf16|fp16` runs the forward
checks with every layer in that dtype, against the oracle on the same rounded inputs;
a framework without kernels for it on this device is reported as unsupported, not as a failure.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

from resnet_rosetta import frameworks
from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import Unsupported, UserError
from resnet_rosetta.common.precision import DTYPES
from resnet_rosetta.common.tolerance import CAP, FLOOR_FACTOR, KINK_MARGIN
from resnet_rosetta.common.spec import ResNetSpec, get_spec

DEFAULT_ARCHS = ("resnet18", "resnet50")
ALL_CHECKS = ("eval", "train", "grad", "step", "steps")
FORWARD_CHECKS = ("eval", "train")  # the checks a bf16 / fp16 run covers


def _csv(values: list[str] | str) -> list[str]:
    text = ",".join(values) if isinstance(values, list) else values
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("parity", help="compare every framework with each other and a float64 oracle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", action="append", help="preset(s) to check, repeatable or comma-separated "
                                                   f"(default: {', '.join(DEFAULT_ARCHS)})")
    p.add_argument("--frameworks", default=",".join(frameworks.FRAMEWORKS), help="comma-separated")
    p.add_argument("--checks", help=f"comma-separated subset of {','.join(ALL_CHECKS)} (default: all of them "
                                    f"in fp32, {','.join(FORWARD_CHECKS)} in bf16 / fp16)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32",
                   help="compute dtype of the forward checks (default fp32). bf16 / fp16 round weights and "
                        "inputs onto that grid, run every layer in it and compare with the float64 oracle "
                        "under the dtype's tolerances; gradients and SGD steps are checked in fp32 only")
    p.add_argument("--size", type=int, help="input height and width (default: 224, or the preset's own for "
                                            "small-input presets)")
    p.add_argument("--grad-size", type=int, default=64,
                   help="input size of the gradient checks grad, step, steps (default 64; the oracle's "
                        "backward costs about 1-2 s per step at 64 px here)")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, inputs and labels (default 0)")
    p.add_argument("--steps", type=int, default=5, help="SGD steps for the `steps` check (default 5)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (momentum 0.9, weight decay 1e-4)")
    p.add_argument("--bn-running-var", choices=("unbiased", "biased", "native"), default="unbiased",
                   help="batch variance fed to the running variance in every framework and the oracle; "
                        "'native' lets each framework follow its own rule and reports the difference")
    p.add_argument("--stagewise", action="store_true",
                   help="also feed every stage the oracle's input for it, so errors do not compound")
    p.add_argument("--weights", help="check this checkpoint (any format) instead of seeded random weights")
    p.add_argument("--isolate", action="store_true", help="run each framework in its own worker process")
    p.add_argument("--python", default="", metavar="FW=PATH,...",
                   help="per-framework Python for isolated workers, e.g. torch=/envs/cuda/bin/python, with "
                        "resnet-rosetta installed there (implies --isolate)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker process (default 900)")
    p.add_argument("--run-dir", help="keep the isolated run's exchange files in this folder")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown tables")
    return p


def _pythons(text: str, names: list[str]) -> dict[str, str]:
    out = {}
    for item in _csv(text):
        fw, sep, path = item.partition("=")
        if not sep or fw not in frameworks.FRAMEWORKS:
            raise UserError(f"--python expects FRAMEWORK=PATH with FRAMEWORK in {', '.join(frameworks.FRAMEWORKS)}, "
                            f"found {item!r}")
        out[fw] = path
    return out


def run(args: argparse.Namespace) -> int:
    from resnet_rosetta.parity import engine, isolation, report
    from resnet_rosetta.frameworks.weights import read_weights

    names = _csv(args.frameworks)
    for name in names:
        if name not in frameworks.FRAMEWORKS:
            raise UserError(f"unknown framework {name!r}; known: {', '.join(frameworks.FRAMEWORKS)}")
    low_precision = args.dtype != "fp32"
    checks = tuple(_csv(args.checks if args.checks is not None else
                        ",".join(FORWARD_CHECKS if low_precision else ALL_CHECKS)))
    unknown = [c for c in checks if c not in ALL_CHECKS]
    if unknown or not checks:
        raise UserError(f"unknown check {unknown[0] if unknown else '(none)'!r}; known: {', '.join(ALL_CHECKS)}")
    fp32_only = [c for c in checks if c not in FORWARD_CHECKS]
    if low_precision and fp32_only:
        raise UserError(f"--dtype {args.dtype} covers the checks {','.join(FORWARD_CHECKS)}; "
                        f"{','.join(fp32_only)} run in fp32 only (at bf16 / fp16 too many ReLU inputs sit within "
                        "rounding of zero for a branch-following oracle to mean anything)")
    if args.batch < 2 and set(checks) & {"train", "grad", "step", "steps"}:
        raise UserError("--batch must be >= 2 for train-mode checks (batch statistics need two samples)")
    if args.batch < 1 or min(args.size or 8, args.grad_size) < 8 or args.steps < 1:
        raise UserError("--batch and --steps must be >= 1, --size and --grad-size >= 8")
    pythons = _pythons(args.python, names)
    isolate = args.isolate or bool(pythons)
    hyper = engine.Hyper(lr=args.lr, steps=args.steps)

    def fit(spec: ResNetSpec) -> ResNetSpec:  # every participant builds from the run's BN convention
        return spec.replace(bn_running_var=args.bn_running_var)

    archs = _csv(args.arch) if args.arch else list(DEFAULT_ARCHS)
    if args.weights:
        if args.arch and len(archs) != 1:
            raise UserError("--weights takes at most one --arch")
        weights, spec, _ = read_weights(args.weights, archs[0] if args.arch else None)
        specs = [spec]
    else:
        specs, weights = [get_spec(a) for a in archs], None
    cases = [engine.ParityCase.seeded(fit(s), args.size or s.input_size, args.batch, args.seed, weights, hyper,
                                      grad_size=min(args.grad_size, args.size or s.input_size), dtype=args.dtype)
             for s in specs]

    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="rr-parity-"))
    numerics: dict[str, object] = {}
    errors: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    comparisons: list[engine.Comparison] = []
    conventions: dict[str, object] = {}
    branches: dict[str, object] = {}
    informational = ("running_var",) if args.bn_running_var == "native" else ()
    try:
        for case in cases:
            arch = case.spec.name
            print(f"parity: {arch}: running the float64 oracle", file=sys.stderr)
            reference = engine.oracle_outputs(case, checks)
            floors = engine.conditioning_floors(case, checks, reference, args.seed)
            if args.stagewise and "eval" in checks:
                case = engine.with_stagewise_feed(case, reference)
                reference.update(engine.stagewise_reference(reference))
            results = {engine.ORACLE: reference}
            case_file = run_dir / f"{arch}.case.safetensors"
            if isolate:
                run_dir.mkdir(parents=True, exist_ok=True)
                isolation.save_case(case, checks, args.seed, case_file)
            for name in names:
                if name in errors or name in unsupported:
                    continue
                print(f"parity: {arch}: running {name}{' (isolated)' if isolate else ''}", file=sys.stderr)
                try:
                    if isolate:
                        results[name], numerics[name] = isolation.run_isolated(
                            name, case_file, run_dir / arch, pythons.get(name), args.timeout)
                    else:
                        results[name], numerics[name] = isolation.run_in_process(name, case, checks, args.seed)
                except isolation.WorkerFailed as exc:
                    errors[name] = str(exc)
                except Unsupported as exc:
                    unsupported[name] = str(exc)
            print(f"parity: {arch}: following each framework's ReLU branches in the oracle", file=sys.stderr)
            references, matches = engine.follow_gates(case, checks, results)
            branches[arch] = {name: dataclasses.asdict(m) for name, m in matches.items()}
            comparisons += engine.compare_participants(arch, results, args.dtype, informational=informational,
                                                       references=references, matches=matches, floors=floors)
            if "train" in checks:
                conventions[arch] = engine.running_var_factor(case, results)
    finally:
        if not args.run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)

    settings = {"archs": [c.spec.name for c in cases], "size": [int(c.x.shape[-1]) for c in cases],
                "grad_size": [int(c.batches[0][0].shape[-1]) for c in cases],
                "batch": args.batch, "seed": args.seed, "dtype": args.dtype, "checks": list(checks),
                "isolate": isolate, "python": pythons, "weights": args.weights,
                "bn_running_var": args.bn_running_var, "stagewise": args.stagewise,
                "sgd": {"lr": hyper.lr, "momentum": hyper.momentum, "weight_decay": hyper.weight_decay,
                        "steps": hyper.steps, "nesterov": False},
                "oracle": "float64 NumPy forward and backward (common/oracle.py); for grad, step and steps "
                          f"its backward follows each framework's ReLU branches within {KINK_MARGIN:g} of zero",
                "conditioning_floor": "float64 oracle rerun with weights and inputs moved by one unit "
                                      "round-off of the dtype (relative, uniform); allowance "
                                      f"min({FLOOR_FACTOR:g} floors, {CAP:g})"}
    doc = report.to_json(comparisons, settings, numerics, errors, conventions, unsupported, branches)
    print(report.terminal(comparisons, errors, conventions, unsupported, branches))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, report.markdown(doc))
    print(f"\nparity: {'PASS' if doc['passed'] else 'FAIL'}")
    return 0 if doc["passed"] else 1
