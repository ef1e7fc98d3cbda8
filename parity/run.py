"""A whole parity run from its settings: `run_parity(Settings(...))` -> the report document.

For every architecture: the float64 oracle, the conditioning floors, optionally the stagewise feed,
then each framework in this process or in its own worker (`isolation.py`), the oracle following
each framework's ReLU branches, and every pair compared (`engine.py`). The document, the terminal
table and the Markdown come from `report.py`. `device="gpu"`: the frameworks compute on the GPU
(those that see none are listed as unsupported, with what they see), TF32 off and deterministic
kernels (`isolation.gpu_numerics_env` and each adapter's `parity_numerics`); the oracle stays on
the CPU in float64. With `proof` (the default), a second, small fp64 run of the same architectures
follows (`PROOF`): its document rides along under `float64`, its verdict in one line.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import Unsupported, UserError
from resnet_rosetta.common.precision import DTYPES
from resnet_rosetta.common.replicas import check_port
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.common.tolerance import CAP, FLOOR_FACTOR, FP64_BOUND, KINK_MARGIN, STRICT
from resnet_rosetta.frameworks import FRAMEWORKS, devices
from resnet_rosetta.frameworks.weights import read_weights
from . import dataparallel, engine, isolation, report, usermodel

DEFAULT_ARCHS = ("resnet18", "resnet50")
ALL_CHECKS = engine.CHECKS + (dataparallel.CHECK,)
FORWARD_CHECKS = ("eval", "train")  # the checks a bf16 / fp16 run covers
LOW_PRECISION = ("bf16", "fp16")
# The fp64 proof's sizes (at most these): 64 px keeps 2 x 2 positions per channel in layer4 of an
# ImageNet-stem model (at 32 px, batch 2, its train-mode batch norm sees 2 values per channel). One SGD
# step: a second one starts from parameters 1e-13 apart, and train-mode batch norm over 8 values per
# channel amplifies that past the bound (resnet50: 2.2e-10 to 4.9e-10 at step 2, no ReLU flip). Seeded
# models at a quarter of their widths (1/16 of the multiply-adds): for time. Why: docs/parity.md.
PROOF = {"size": 64, "grad_size": 64, "batch": 2, "steps": 1, "width_divisor": 4}
# ... and its checks: grad and step are folded into steps, whose first step compares the same
# parameters and running statistics, and momentum buffers g + wd * p (one trainer, not three).
PROOF_CHECKS = {"eval": "eval", "train": "train", "grad": "steps", "step": "steps", "steps": "steps"}
INCOMPLETE = 3  # exit status: nothing failed, but a framework could not run the fp64 proof
RUNNING_VAR_FEEDS = ("unbiased", "biased", "native")


@dataclass(frozen=True)
class Settings:
    """Everything a parity run needs; `validated()` checks it and fills the defaults."""

    archs: tuple[str, ...] = ()  # presets; empty: DEFAULT_ARCHS (or the checkpoint's own)
    frameworks: tuple[str, ...] = FRAMEWORKS
    checks: tuple[str, ...] | None = None  # None: every check in fp32, FORWARD_CHECKS in bf16 / fp16
    dtype: str = "fp32"
    size: int | None = None  # None: 224, or the preset's own for small-input presets
    grad_size: int = 48  # ImageNet stem: layer4 still 2 x 2 (as at 64 px), at 0.56 of the cost
    batch: int = 4
    seed: int = 0
    steps: int = 2  # the fp32 steps check; step 2 on shows the momentum, every step the running statistics
    lr: float = 0.01
    bn_running_var: str = "unbiased"
    stagewise: bool = False
    weights: str | None = None
    device: str = "cpu"  # where the frameworks compute: "cpu" or "gpu"
    isolate: bool = False
    python: dict[str, str] = field(default_factory=dict)  # framework -> interpreter of its worker
    timeout: float = 900.0
    run_dir: str | None = None
    json_out: str | None = None
    markdown: str | None = None
    data_parallel: int | None = None  # replicas of the dp check (parity/dataparallel.py); None: no dp check
    dp_steps: int = dataparallel.DEFAULT_STEPS
    dp_node: bool = False  # this process is one replica of a launcher's multi-node run (dataparallel.py)
    dp_port: int | None = None  # the dp rendezvous port on 127.0.0.1 (None: a free one)
    proof: bool = False  # then also the fp64 proof of the same architectures, at PROOF sizes (the CLI: on)
    size_cap: int | None = None  # inputs at most this size (the proof's)
    models: tuple[usermodel.UserModel, ...] = ()  # the user's own ports (--model), beside ours
    width_divisor: int = 1  # seeded models at 1 / this of their preset's widths (the proof's)

    def validated(self) -> Settings:
        for name in self.frameworks:
            if name not in FRAMEWORKS:
                raise UserError(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
        for name in self.python:
            if name not in FRAMEWORKS:
                raise UserError(f"--python expects FRAMEWORK=PATH with FRAMEWORK in {', '.join(FRAMEWORKS)}, "
                                f"found {name!r}")
        if self.dtype not in DTYPES or self.bn_running_var not in RUNNING_VAR_FEEDS:
            raise UserError(f"dtype must be one of {', '.join(DTYPES)} and the running-variance feed one of "
                            f"{', '.join(RUNNING_VAR_FEEDS)}")
        low_precision = self.dtype in LOW_PRECISION
        checks = self.checks if self.checks is not None else FORWARD_CHECKS if low_precision else engine.CHECKS
        if self.dp_port is not None and self.data_parallel is not None and not self.dp_node:
            check_port(self.dp_port, self.data_parallel, "--dp-port")
        if self.dp_node:
            _check_node(self)
            checks = (dataparallel.CHECK,)
        checks = dataparallel.with_dp(tuple(checks), self.data_parallel, self.batch, self.dp_steps)
        unknown = [c for c in checks if c not in ALL_CHECKS]
        if unknown or not checks:
            raise UserError(f"unknown check {unknown[0] if unknown else '(none)'!r}; known: {', '.join(ALL_CHECKS)}")
        fp32_only = [c for c in checks if c not in FORWARD_CHECKS]
        if low_precision and fp32_only:
            raise UserError(f"--dtype {self.dtype} covers the checks {','.join(FORWARD_CHECKS)}; "
                            f"{','.join(fp32_only)} run in fp32 and fp64 only (at bf16 / fp16 too many ReLU inputs sit "
                            "within rounding of zero for a branch-following oracle to mean anything)")
        if self.batch < 2 and set(checks) & {"train", "grad", "step", "steps"}:
            raise UserError("--batch must be >= 2 for train-mode checks (batch statistics need two samples)")
        if self.batch < 1 or min(self.size or 8, self.grad_size) < 8 or self.steps < 1:
            raise UserError("--batch and --steps must be >= 1, --size and --grad-size >= 8")
        if self.device not in ("cpu", "gpu"):
            raise UserError(f"--device must be cpu or gpu, found {self.device!r}")
        if self.weights and len(self.archs) > 1:
            raise UserError("--weights takes at most one --arch")
        twice = [m.text for i, m in enumerate(self.models) if m.framework in {n.framework for n in self.models[:i]}]
        if twice:
            raise UserError(f"--model {twice[0]}: one user model per framework")
        if self.models and self.data_parallel:
            raise UserError("--model and --data-parallel do not combine (dp runs this suite's ports only)")
        proof = self.proof and self.dtype not in STRICT and bool(set(checks) & set(PROOF_CHECKS))
        return dataclasses.replace(self, checks=tuple(checks), isolate=self.isolate or bool(self.python), proof=proof)

    def proof_settings(self) -> Settings:
        """The fp64 proof that accompanies this run: same architectures and weights, PROOF sizes and checks."""
        return dataclasses.replace(
            self, dtype="fp64", proof=False, json_out=None, markdown=None, data_parallel=None,
            checks=tuple(dict.fromkeys(PROOF_CHECKS[c] for c in self.checks or engine.CHECKS if c in PROOF_CHECKS)),
            size_cap=PROOF["size"], grad_size=PROOF["grad_size"],
            batch=min(self.batch, PROOF["batch"]), steps=min(self.steps, PROOF["steps"]),
            width_divisor=1 if self.models else PROOF["width_divisor"],  # a user factory builds preset widths
            run_dir=self.run_dir and str(Path(self.run_dir) / "fp64"))


def _check_node(s: Settings) -> None:
    """`--dp-node`: only the dp check of one framework, its replicas writing into one shared folder."""
    if s.data_parallel is None or len(s.frameworks) != 1 or s.checks not in (None, (dataparallel.CHECK,)):
        raise UserError("--dp-node runs one framework's dp check: it needs --data-parallel N and one --frameworks, "
                        f"and no other --checks (found frameworks {','.join(s.frameworks)}, checks "
                        f"{','.join(s.checks or ('(default)',))})")
    if not s.run_dir or s.isolate or s.python or s.device != "cpu" or s.dtype != "fp32" or s.dp_port:
        raise UserError("--dp-node needs --run-dir (a folder every node sees) and takes none of --isolate, "
                        "--python, --device gpu, --dtype other than fp32, --dp-port (the launcher's)")


def run_parity(settings: Settings, out: TextIO | None = None) -> dict[str, Any]:
    """Run every check of `settings` (and its fp64 proof), print the terminal table to `out`, write
    the JSON / Markdown files asked for (atomically) and return the report document (`doc["passed"]`:
    the verdict; `doc["incomplete"]`: frameworks that could not run in fp64)."""
    s, out = settings.validated(), out or sys.stdout
    doc = _run_one(s, out)
    if doc.get("replica_only"):
        print("parity: dp node: this process's replicas are done and written; rank 0 writes the report", file=out)
        return doc
    if s.proof:
        _progress("float64 proof of the same architectures")
        proof = _run_one(s.proof_settings().validated(), None)
        doc.update(float64=proof, passed=doc["passed"] and proof["passed"], incomplete=proof["incomplete"])
        if not proof["passed"]:
            print("\n" + report.proof_failures(proof), file=out)
    if s.dtype in STRICT or s.proof:
        print(f"\n{(doc.get('float64') or doc)['proof']}", file=out)
    if s.json_out:
        atomic_write_text(s.json_out, json.dumps(doc, indent=2) + "\n")
    if s.markdown:
        atomic_write_text(s.markdown, report.markdown(doc) + dataparallel.markdown(doc))
    print(f"\nparity: {'PASS' if doc['passed'] else 'FAIL'}"
          + (f" (incomplete: {', '.join(doc['incomplete'])} could not run in fp64)" if doc["incomplete"] else ""),
          file=out)
    return doc


def _run_one(s: Settings, out: TextIO | None) -> dict[str, Any]:
    """One dtype's run: the report document, its terminal table printed to `out` (if given)."""
    found = _Found()
    if s.device == "gpu":
        _on_gpu(s, found)
    hyper = engine.Hyper(lr=s.lr, steps=s.steps)
    cases, users = [], {}
    for spec, weights, mine in _participants(s):
        users[spec.name] = mine
        size = min(s.size or spec.input_size, s.size_cap or 1 << 16)
        cases.append(dataclasses.replace(engine.ParityCase.seeded(spec, size, s.batch, s.seed, weights, hyper,
                                                                  grad_size=min(s.grad_size, size), dtype=s.dtype),
                                         device=s.device))
    run_dir = Path(s.run_dir) if s.run_dir else Path(tempfile.mkdtemp(prefix="rr-parity-"))
    try:
        if set(s.checks) - {dataparallel.CHECK}:
            _run_cases(s, cases, run_dir, found, users)
        dp = dataparallel.run_cases(cases, s.frameworks, s.data_parallel, s.dp_steps, s.seed, run_dir,
                                    s.timeout, s.python, s.dp_node, s.dp_port) if s.data_parallel else None
    finally:
        if not s.run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    if dp is not None and not dp.report:
        return {"passed": True, "incomplete": [], "replica_only": True}
    if dp is not None:
        found.comparisons += dp.comparisons
        found.errors.update(dp.errors)
        found.unsupported.update(dp.unsupported)
    record = _settings_record(s, cases, cases[0].hyper if cases else hyper)  # fp64: float32-exact SGD settings
    doc = report.to_json(found.comparisons, record, found.numerics, found.errors, found.conventions,
                         found.unsupported, found.branches)
    doc["incomplete"] = sorted(found.unsupported) if s.dtype in STRICT else []
    if s.dtype in STRICT:
        doc["proof"] = report.proof_line(doc)
    if dp is not None:
        doc["data_parallel"] = dp.section
    if out is not None:
        print(report.terminal(found.comparisons, found.errors, found.conventions, found.unsupported, found.branches,
                              s.dtype), file=out)
        if dp is not None:
            print(dataparallel.terminal(dp.section), file=out)
    return doc


def _on_gpu(s: Settings, found: _Found) -> None:
    """Frameworks that see no GPU are listed as unsupported with what they see (none sees one: a
    UserError naming each); this process and its workers get TF32 off and XLA's deterministic
    kernels before any framework starts CUDA."""
    sights = devices.probe(s.frameworks)
    choice = devices.choose("gpu", sights)
    for fw in s.frameworks:
        if fw not in choice.frameworks:
            found.unsupported[fw] = f"{fw} sees no GPU ({sights[fw].text()})"
    os.environ.update(isolation.gpu_numerics_env())


def _participants(s: Settings) -> list[tuple[ResNetSpec, dict | None, tuple[usermodel.UserModel, ...]]]:
    """(spec, weights or None for seeded ones, the user's models fitted to it) per architecture, each
    built with the run's BN feed. With --model and no --arch nor --weights, the models' own."""
    if s.weights:
        weights, spec, _ = read_weights(s.weights, s.archs[0] if s.archs else None)
        pairs = [(spec, weights)]
    else:
        pairs = [(_narrowed(get_spec(a), s.width_divisor), None) for a in (s.archs or DEFAULT_ARCHS)]
    if not s.models:
        return [(spec.replace(bn_running_var=s.bn_running_var), weights, ()) for spec, weights in pairs]
    named = [spec for spec, _ in pairs] if s.weights or s.archs else None
    fitted = usermodel.fit(s.models, named, DEFAULT_ARCHS, s.isolate, s.python, s.timeout)
    given = {spec.name: weights for spec, weights in pairs}
    return [(spec.replace(bn_running_var=s.bn_running_var), given.get(spec.name), mine) for spec, mine in fitted]


def _narrowed(spec: ResNetSpec, divisor: int) -> ResNetSpec:
    """The preset's structure at 1 / divisor of its widths (as far as its groups allow)."""
    if divisor == 1:
        return spec
    try:
        return spec.replace(widths=tuple(max(1, w // divisor) for w in spec.widths),
                            stem_width=max(2, spec.stem_width // divisor))
    except UserError:  # e.g. ResNeXt groups that a narrower stage cannot hold: the preset's own widths
        return spec


@dataclass
class _Found:
    """What the frameworks produced and how they compared, over every architecture."""

    comparisons: list[engine.Comparison] = field(default_factory=list)
    numerics: dict[str, object] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    conventions: dict[str, object] = field(default_factory=dict)
    branches: dict[str, object] = field(default_factory=dict)


def _run_cases(s: Settings, cases: list[engine.ParityCase], run_dir: Path, found: _Found,
               users: dict[str, tuple[usermodel.UserModel, ...]]) -> None:
    informational = ("running_var",) if s.bn_running_var == "native" else ()
    for case in cases:
        arch = case.spec.name
        _progress(f"{arch}: running the float64 oracle")
        reference = engine.oracle_outputs(case, s.checks)
        floors = {} if case.strict else engine.conditioning_floors(case, s.checks, reference, s.seed)
        if s.stagewise and "eval" in s.checks:
            case = engine.with_stagewise_feed(case, reference)
            reference.update(engine.stagewise_reference(reference))
        results = {engine.ORACLE: reference}
        case_file = run_dir / f"{arch}.case.safetensors"
        if s.isolate:
            run_dir.mkdir(parents=True, exist_ok=True)
            isolation.save_case(case, s.checks, s.seed, case_file)
        mine = {u.name: u for u in users.get(arch, ())}
        for name in (*s.frameworks, *mine):
            if name in found.errors or name in found.unsupported:
                continue
            _progress(f"{arch}: running {name}{' (isolated)' if s.isolate else ''}")
            user = mine.get(name)
            fw = user.framework if user else name
            try:
                if s.isolate:
                    results[name], found.numerics[name] = isolation.run_isolated(
                        name, case_file, run_dir / arch, s.python.get(fw), s.timeout,
                        dataclasses.asdict(user) if user else None)
                else:
                    results[name], found.numerics[name] = isolation.run_in_process(
                        fw, case, s.checks, s.seed, user.port() if user else None)
            except isolation.WorkerFailed as exc:
                found.errors[name] = str(exc)
            except Unsupported as exc:
                found.unsupported[name] = str(exc)
        _progress(f"{arch}: following each framework's ReLU branches in the oracle")
        references, matches = engine.follow_gates(case, s.checks, results)
        found.branches[arch] = {name: dataclasses.asdict(m) for name, m in matches.items()}
        comparisons = engine.compare_participants(arch, results, s.dtype, informational=informational,
                                                  references=references, matches=matches, floors=floors)
        usermodel.name_rows(comparisons, tuple(mine.values()), case.spec)
        found.comparisons += comparisons
        if "train" in s.checks:
            found.conventions[arch] = engine.running_var_factor(case, results)


def _progress(message: str) -> None:
    print(f"parity: {message}", file=sys.stderr)


def _settings_record(s: Settings, cases: list[engine.ParityCase], hyper: engine.Hyper) -> dict[str, Any]:
    """The `settings` section of the report document (schema resnet-rosetta-parity/2)."""
    if s.dtype in STRICT:
        return {**_common_record(s, cases, hyper),
                "oracle": "float64 NumPy forward and backward (common/oracle.py) on its own ReLU branches "
                          "everywhere (a framework's flips are counted, never followed); the K steps run free",
                "conditioning_floor": None, "bound": f"{FP64_BOUND:g} relative, every quantity and pair",
                "exact_constants": {
                    "bn": {c.spec.name: {"bn_eps": c.spec.bn_eps, "bn_momentum": c.spec.bn_momentum} for c in cases},
                    "why": "Paddle keeps batch norm's epsilon and momentum and its optimizer's learning rate, "
                           "momentum and L2 coefficient as float32 attributes even in float64 models: the run "
                           "uses BN epsilon and the SGD settings rounded to float32 and a BN momentum m on the "
                           "2**-24 grid (m and 1 - m both float32), exact in every framework and the oracle"}}
    return {**_common_record(s, cases, hyper),
            "oracle": "float64 NumPy forward and backward (common/oracle.py); for grad, step and steps "
                      f"its backward follows each framework's ReLU branches within {KINK_MARGIN:g} of zero",
            "conditioning_floor": "float64 oracle rerun with weights and inputs moved by one unit "
                                  "round-off of the dtype (relative, uniform); allowance "
                                  f"{FLOOR_FACTOR:g} floors, none where that passes {CAP:g}"}


def _common_record(s: Settings, cases: list[engine.ParityCase], hyper: engine.Hyper) -> dict[str, Any]:
    return {"archs": [c.spec.name for c in cases], "widths": [list(c.spec.widths) for c in cases],
            "width_divisor": s.width_divisor,
            "size": [int(c.x.shape[-1]) for c in cases],
            "grad_size": [int(c.batches[0][0].shape[-1]) for c in cases],
            "batch": s.batch, "seed": s.seed, "dtype": s.dtype, "checks": list(s.checks), "device": s.device,
            "isolate": s.isolate, "python": dict(s.python), "weights": s.weights,
            "bn_running_var": s.bn_running_var, "stagewise": s.stagewise,
            "models": {m.name: m.text for m in s.models},
            "sgd": {"lr": hyper.lr, "momentum": hyper.momentum, "weight_decay": hyper.weight_decay,
                    "steps": hyper.steps, "nesterov": False}}
