"""`resnet-rosetta parity`: port one set of weights to every framework and compare them all.

In-process is the default (all three frameworks import side by side, 2-3x faster than workers);
`--isolate` runs each framework in its own process (and, with `--python`, its own environment),
exchanging safetensors files: for frameworks that clash in one process or live elsewhere.

Each comparison ends as one of: pass; FAIL (exit code 1); conditioning-limited (beyond the
tolerance but within 30 times the quantity's conditioning floor: how far the float64 oracle moves
when weights and inputs move by one unit round-off), which does not fail the run and is never
shown as a pass. For grad, step and steps, where fp32 took the other ReLU branch at an input
float64 puts within 1e-3 (relative) of zero, the oracle's backward follows it (the report lists
each), and each of the K steps starts the oracle from the framework's own state.
`--dtype bf16|fp16` runs the forward checks in that dtype (a framework without kernels for it is
unsupported, not a failure). `--dtype fp64` runs every check in float64 under one 1e-10 bound, with
no floors, no branch-following and free-running trajectories. After any other run comes such an
fp64 proof of the same architectures, small (a quarter of their widths, 64 px, batch 2, 1 step;
`--no-proof` skips it); exit status 3: some framework could not run in float64, nothing failed.
A ReLU branch taken farther than 1e-3 from zero fails its check in any dtype. `--model FW=mod:factory`
runs your own port beside ours; `--data-parallel N` adds `dp`, each framework's own data-parallel
engine on N replicas (`--dp-node`: across machines under its own launcher; docs/parity.md).
"""
from __future__ import annotations

import argparse

from resnet_rosetta.common.options import integer, number
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.precision import DTYPES
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.parity.usermodel import parse as parse_model
from resnet_rosetta.parity.engine import Hyper
from resnet_rosetta.parity.run import (ALL_CHECKS, DEFAULT_ARCHS, FORWARD_CHECKS, INCOMPLETE, RUNNING_VAR_FEEDS,
                                       Settings, run_parity)


def _csv(values: list[str] | str) -> list[str]:
    text = ",".join(values) if isinstance(values, list) else values
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("parity", help="compare every framework with each other and a float64 oracle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", action="append", help="preset(s) to check, repeatable or comma-separated "
                                                   f"(default: {', '.join(DEFAULT_ARCHS)})")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated")
    p.add_argument("--checks", help=f"comma-separated subset of {','.join(ALL_CHECKS)} (default: all of them "
                                    f"in fp32 and fp64, {','.join(FORWARD_CHECKS)} in bf16 / fp16; dp only with and "
                                    "always with --data-parallel)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32",
                   help="compute dtype of the checks (default fp32). bf16 / fp16 round weights and inputs onto "
                        "that grid, run every layer in it and compare with the float64 oracle under the dtype's "
                        "tolerances (forward checks only); fp64 runs every check in float64 under one 1e-10 bound")
    p.add_argument("--proof", action=argparse.BooleanOptionalAction, default=True,
                   help="after the run, the fp64 proof of the same architectures, small (seeded models at a quarter "
                        "of their widths, at most 64 px, batch 2, 1 SGD step): every check in float64 under "
                        "one 1e-10 bound (default: on; --no-proof skips it)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="where the frameworks compute (default cpu); gpu: each framework that sees one, TF32 "
                        "off and deterministic kernels, the others listed as unsupported; the oracle stays float64 "
                        "on the CPU")
    p.add_argument("--size", type=int, help="input height and width (default: 224, or the preset's own for "
                                            "small-input presets)")
    p.add_argument("--grad-size", type=int, default=Settings.grad_size,
                   help=f"input size of the gradient checks grad, step, steps (default {Settings.grad_size}: "
                        "layer4 of an ImageNet-stem model still sees 2 x 2 positions, as at 64 px)")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--seed", type=integer("--seed", 0, 2**32 - 1), default=0, help="seed for weights, inputs and labels (default 0)")
    p.add_argument("--steps", type=int, default=Settings.steps,
                   help=f"SGD steps for the `steps` check (default {Settings.steps})")
    p.add_argument("--lr", type=number("--lr", 0, 10, low_open=True), default=0.01,
                   help=f"SGD learning rate (default 0.01; momentum 0.9, weight decay {Hyper.weight_decay:g}, "
                        "large enough that a step's decay shows well above the step bound)")
    p.add_argument("--bn-running-var", choices=RUNNING_VAR_FEEDS, default="unbiased",
                   help="batch variance fed to the running variance in every framework and the oracle; "
                        "'native' lets each framework follow its own rule and reports the difference")
    p.add_argument("--stagewise", action="store_true",
                   help="also feed every stage the oracle's input for it, so errors do not compound")
    p.add_argument("--model", action="append", metavar="FW=MODULE:FACTORY",
                   help="also check your own ResNet in framework FW (torch, paddle, flax): FACTORY(preset name) "
                        "or FACTORY() builds it; MODULE importable from the working directory or PYTHONPATH "
                        "(repeatable, one per framework)")
    p.add_argument("--weights", help="check this checkpoint (any format) instead of seeded random weights")
    p.add_argument("--isolate", action="store_true", help="run each framework in its own worker process")
    p.add_argument("--python", default="", metavar="FW=PATH,...",
                   help="per-framework Python for isolated workers, e.g. torch=/envs/cuda/bin/python, with "
                        "resnet-rosetta installed there (implies --isolate)")
    p.add_argument("--timeout", type=number("--timeout", 0, 10**7, low_open=True), default=900, help="seconds per worker process (default 900)")
    p.add_argument("--run-dir", help="keep the isolated run's exchange files in this folder")
    p.add_argument("--data-parallel", type=integer("--data-parallel"), metavar="N",
                   help="add the dp check: each framework trains on one global batch split over N >= 2 replicas "
                        "with its own engine (DDP, paddle.DataParallel, a JAX device mesh), against the float64 "
                        "oracle of the same batch-norm semantics; N must divide --batch")
    p.add_argument("--dp-steps", type=integer("--dp-steps"), default=Settings.dp_steps, metavar="K",
                   help="SGD steps of the dp check (default 3)")
    p.add_argument("--dp-port", type=integer("--dp-port", 1, 65535), metavar="PORT",
                   help="rendezvous port of the dp replicas on 127.0.0.1 (Paddle's take PORT..PORT+N-1; default: a "
                        "free one); one in use is refused")
    p.add_argument("--dp-node", action="store_true",
                   help="this process is one replica of a multi-node launch (torchrun, python -m "
                        "paddle.distributed.launch, or one process per machine for JAX): the world comes from the "
                        "launcher's environment, the replicas write into --run-dir (shared by every node) and rank 0 "
                        "reports (README: Data parallel across machines)")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown tables")
    return p


def _pythons(text: str) -> dict[str, str]:
    out = {}
    for item in _csv(text):
        fw, sep, path = item.partition("=")
        if not sep:
            raise UserError(f"--python expects FRAMEWORK=PATH with FRAMEWORK in {', '.join(FRAMEWORKS)}, "
                            f"found {item!r}")
        out[fw] = path
    return out


def run(args: argparse.Namespace) -> int:
    doc = run_parity(Settings(
        archs=tuple(_csv(args.arch)) if args.arch else (), frameworks=tuple(_csv(args.frameworks)),
        checks=tuple(_csv(args.checks)) if args.checks is not None else None, dtype=args.dtype,
        proof=args.proof, size=args.size,
        grad_size=args.grad_size, batch=args.batch, seed=args.seed, steps=args.steps, lr=args.lr,
        bn_running_var=args.bn_running_var, stagewise=args.stagewise, weights=args.weights, device=args.device,
        isolate=args.isolate,
        python=_pythons(args.python), timeout=args.timeout, run_dir=args.run_dir, json_out=args.json_out,
        markdown=args.markdown, data_parallel=args.data_parallel, dp_steps=args.dp_steps,
        dp_node=args.dp_node, dp_port=args.dp_port,
        models=tuple(parse_model(m) for m in args.model or ())))
    return 1 if not doc["passed"] else INCOMPLETE if doc["incomplete"] else 0
