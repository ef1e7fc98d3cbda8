"""The catalogue of broken ports: each bug (catalogue_bugs.py) planted in one framework must FAIL the
fp64 parity check with its first divergence at the catalogued check and quantity, while the other
frameworks pass; what the fp32 check (floors, branch-following) says of the same bug is recorded.
docs/catalogue.md is rendered from CATALOGUE and CONTROLS (common/catalogue.py; the command:
`python tests/parity/test_catalogue.py`)
and checked here, so every row of it is one these tests assert. Tiny models, 32 px, batch 4, K = 2;
the clean frameworks run once per configuration and dtype (cached) and are reused by every entry.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.catalogue import CATALOGUE, CONTROLS, FORWARD, Entry
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks import FRAMEWORKS
from resnet_rosetta.parity import engine, usermodel

from catalogue_bugs import BUGS, plant

pytestmark = pytest.mark.xdist_group("catalogue")  # one worker: the cached clean runs are made once
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "catalogue.md"
USER_MODELS = Path(__file__).resolve().parent / "user_models"
BATCH, STEPS = 4, 2
HYPER = engine.Hyper(steps=STEPS)
CONFIGS = {  # name -> (spec, input size): a resnet18 and a ResNeXt structure at 4-16 channels
    "resnet18": (get_spec("resnet18").replace(widths=(4, 8, 8, 16), stem_width=4, depths=(1, 1, 1, 1),
                                              num_classes=16), 32),  # fc 16 x 16: an untransposed one loads
    "resnext": (get_spec("resnext50_32x4d").replace(widths=(4, 8, 8, 16), stem_width=8, depths=(1, 1, 1, 1),
                                                    groups=2, width_per_group=32, num_classes=10), 32)}
# Flax compiles every training function it runs (~10 s a check on the 2-core machine): beside another
# framework's bug it takes the forward checks only (test_parity_fp64.py runs its clean training checks).
FORWARD_ONLY = ("flax",)
# The isolated run's participants and their bugs: our torch port and a user-style port (--model) of
# each framework; bugs patched into a framework's function (torch's and Paddle's batch_norm) and
# written into the user's model (torch's one layer, Flax's norm).
ISOLATED = {"torch": "torch_bn_train_eps", "user-torch": "torch_bn_train_eps_one_layer",
            "user-paddle": "paddle_bn_keras_eps", "user-flax": "flax_linen_batch_norm"}
# (config, framework) -> the factory in user_models/catalogue_ports.py of a user-style port of it
USER_PORTS = {("resnet18", "torch"): "torch_resnet18", ("resnet18", "paddle"): "paddle_resnet18",
              ("resnext", "paddle"): "paddle_resnext", ("resnet18", "flax"): "flax_resnet18"}


def _checks(config: str, framework: str | None = None) -> tuple[str, ...]:
    """Every check the entries of `config` (of `framework`) use, in the engine's order."""
    used = {c for e in CATALOGUE if e.config == config and framework in (None, e.framework) for c in e.checks}
    return tuple(c for c in engine.CHECKS if c in used)


def _clean_checks(config: str, dtype: str, framework: str) -> tuple[str, ...]:
    """What a clean framework runs: in fp64 for the other frameworks' entries, in fp32 for its own."""
    if dtype == "fp32":
        return _checks(config, framework)
    return tuple(c for c in _checks(config) if framework not in FORWARD_ONLY or c in FORWARD)


@functools.lru_cache(maxsize=None)
def _case(config: str, dtype: str) -> engine.ParityCase:
    spec, size = CONFIGS[config]
    return engine.ParityCase.seeded(spec, size=size, batch=BATCH, seed=0, hyper=HYPER,
                                    dtype=dtype)


@functools.lru_cache(maxsize=None)
def _clean(config: str, dtype: str, framework: str) -> engine.Outputs:
    """A framework's own outputs (no bug planted), for every check its configuration needs."""
    return engine.framework_outputs(framework, _case(config, dtype), _clean_checks(config, dtype, framework))


def _only(outputs: engine.Outputs, checks: tuple[str, ...]) -> engine.Outputs:
    """The outputs `checks` alone produce (the side channels of their forwards included)."""
    forwards = ({"grad"} if "grad" in checks else set()) | (
        {f"step{k}" for k in range(1, STEPS + 1)} if "steps" in checks else {"step1"} if "step" in checks else set())

    def kept(key: str) -> bool:
        head, _, rest = key.partition("/")
        if head in (engine.GATES[:-1], engine.MOMENTUM[:-1]):
            return rest.split("/", 1)[0] in forwards and (head != engine.MOMENTUM[:-1] or "steps" in checks)
        return head in checks
    return {k: v for k, v in outputs.items() if kept(k)}


def _judge(config: str, dtype: str, checks: tuple[str, ...], outputs: dict[str, engine.Outputs]
           ) -> list[engine.Comparison]:
    """The frameworks' outputs against the oracle and each other, as `parity` judges them."""
    case = _case(config, dtype)
    reference = engine.oracle_outputs(case, checks)
    floors = {} if case.strict else engine.conditioning_floors(case, checks, reference)
    results = {engine.ORACLE: reference, **outputs}
    references, matches = engine.follow_gates(case, checks, results)
    return engine.compare_participants(config, results, dtype, references=references, matches=matches, floors=floors)


def verdict(comparisons: list[engine.Comparison], framework: str, names: bool = False) -> str:
    """`framework` vs the oracle in one phrase: the first check that fails (or is only conditioning-
    limited) and its first divergence, or "pass"; `names`: with a user's own name for it too."""
    mine = [c for c in comparisons if (c.left, c.right) == (framework, engine.ORACLE)]
    for status, row in (("FAIL", "first_unexcused"), ("conditioning-limited", "first_divergence")):
        for c in mine:
            if c.status == status:
                quantity = getattr(c, row).quantity
                yours = quantity[quantity.find(" (yours: "):] if names and " (yours: " in quantity else ""
                return f"{status} at {c.check}/{quantity.split(' (')[0]}{yours}"
    return "pass"


def _slow(framework: str, checks: tuple[str, ...]) -> tuple[pytest.MarkDecorator, ...]:
    """Flax's training checks compile for seconds each: slow."""
    return (pytest.mark.slow,) if framework in FORWARD_ONLY and set(checks) - set(FORWARD) else ()


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.bug, marks=_slow(e.framework, e.checks)) for e in CATALOGUE])
def test_a_catalogued_bug_fails_in_fp64_where_it_is(entry: Entry, monkeypatch: pytest.MonkeyPatch) -> None:
    others = {fw: _only(_clean(entry.config, "fp64", fw), entry.checks) for fw in FRAMEWORKS
              if fw != entry.framework and set(entry.checks) <= set(_clean_checks(entry.config, "fp64", fw))}
    assert others
    with monkeypatch.context() as mp:
        plant(entry.bug, mp)
        buggy = {dtype: engine.framework_outputs(entry.framework, _case(entry.config, dtype), entry.checks)
                 for dtype in ("fp64", "fp32")}
    fp64 = _judge(entry.config, "fp64", entry.checks, {entry.framework: buggy["fp64"], **others})
    assert verdict(fp64, entry.framework) == f"FAIL at {entry.fp64}"
    alone = {c.check: c.status for c in fp64 if (c.left, c.right) == (entry.framework, engine.ORACLE)}
    for c in fp64:  # the other frameworks pass, against the oracle and each other; paired with the bug, as it does
        assert c.status == (alone[c.check] if entry.framework in (c.left, c.right) else "pass"), (c.check, c.left, c.right)
    fp32 = _judge(entry.config, "fp32", entry.checks, {entry.framework: buggy["fp32"]})
    assert verdict(fp32, entry.framework) == entry.fp32


@functools.lru_cache(maxsize=None)
def _user(config: str, framework: str) -> usermodel.UserModel:
    """The user-style port of `config` in `framework`, named and matched to the configuration's spec as
    `parity --model FW=catalogue_ports:FACTORY` (from user_models/) names and matches it."""
    user = usermodel.parse(f"{framework}=catalogue_ports:{USER_PORTS[(config, framework)]}", str(USER_MODELS))
    [(spec, (fitted,))] = usermodel.fit((user,), [CONFIGS[config][0]], (), False, {}, 60)
    assert spec == CONFIGS[config][0] and fitted.fmt == {"paddle": "paddle-vision"}.get(framework, framework)
    return fitted


def _judge_user(entry: Entry | None, config: str, framework: str, checks: tuple[str, ...],
                mp: pytest.MonkeyPatch) -> list[engine.Comparison]:
    """fp64: the user-style port (with `entry`'s bug written into it) beside our clean ports, as
    `parity --model` judges it, its rows in the user's names too."""
    user = _user(config, framework)
    ours = {fw: _only(_clean(config, "fp64", fw), checks) for fw in FRAMEWORKS
            if set(checks) <= set(_clean_checks(config, "fp64", fw))}
    with mp.context() as patched:
        if entry is not None:
            plant(entry.bug, patched, user=True)
        outputs = engine.framework_outputs(framework, _case(config, "fp64"), checks, user.port())
    comparisons = _judge(config, "fp64", checks, {user.name: outputs, **ours})
    usermodel.name_rows(comparisons, (user,), CONFIGS[config][0])
    return comparisons


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.bug, marks=_slow(e.framework, e.checks)) for e in CATALOGUE])
def test_the_same_bug_in_a_users_model_fails_through_model_where_it_is(entry: Entry,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Written into a user-style port (user_models/): fp64 FAILs at the same place, named in the user's
    names; our ports, its own framework's included, pass against the oracle and each other."""
    fp64 = _judge_user(entry, entry.config, entry.framework, entry.checks, monkeypatch)
    name = f"user-{entry.framework}"
    found = verdict(fp64, name, names=True)
    assert found == entry.through_model, f"expected {entry.through_model!r}, found {found!r}"
    assert all(c.status == "pass" for c in fp64 if name not in (c.left, c.right))


@pytest.mark.parametrize("config,framework", [pytest.param(c, f, id=f"{c}-{f}", marks=_slow(f, _checks(c, f)))
                                              for c, f in USER_PORTS])
def test_the_clean_user_ports_pass_in_fp64(config: str, framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No bug written in: the user-style ports pass every check our clean ports run in fp64 beside
    the bugs (Flax's forward ones: its training compiles for seconds)."""
    checks = _clean_checks(config, "fp64", framework)
    fp64 = _judge_user(None, config, framework, checks, monkeypatch)
    assert all(c.status == "pass" for c in fp64), [(c.check, c.left, c.right, c.first_divergence) for c in fp64
                                                   if c.status != "pass"]


@pytest.mark.parametrize("config,framework", [pytest.param(c, f, id=f"{c}-{f}", marks=_slow(f, _checks(c, f)))
                                              for c, f in CONTROLS])
def test_the_clean_ports_pass_where_the_bugs_are_planted(config: str, framework: str) -> None:
    """No bug: fp64 passes every check the framework runs beside the others' bugs; fp32 as CONTROLS says."""
    fp64 = _judge(config, "fp64", _clean_checks(config, "fp64", framework), {framework: _clean(config, "fp64", framework)})
    assert all(c.status == "pass" for c in fp64), [(c.check, c.first_divergence) for c in fp64]
    fp32 = _judge(config, "fp32", _checks(config, framework), {framework: _clean(config, "fp32", framework)})
    assert verdict(fp32, framework) == CONTROLS[(config, framework)]


def test_every_bug_is_catalogued_once_and_spread_over_the_frameworks() -> None:
    assert sorted(e.bug for e in CATALOGUE) == sorted(BUGS)
    assert all(sum(e.framework == fw for e in CATALOGUE) >= 5 for fw in FRAMEWORKS)
    assert {(e.config, e.framework) for e in CATALOGUE} == set(CONTROLS) == set(USER_PORTS)


@pytest.mark.slow
def test_bugs_planted_in_isolated_workers_fail_where_catalogued(tmp_path: Path) -> None:
    """`parity --isolate` with a user-style port of each framework (`--model`): each worker plants its
    participant's bug through worker_site/sitecustomize.py, in our port or written into the user's."""
    entries = {fw: next(e for e in CATALOGUE if e.bug == bug) for fw, bug in ISOLATED.items()}
    participants = ["--frameworks", "torch", *(a for fw in FRAMEWORKS for a in
                                               ("--model", f"{fw}=catalogue_ports:{USER_PORTS[('resnet18', fw)]}"))]
    checks = [c for c in engine.CHECKS if any(c in e.checks for e in entries.values())]
    spec, size = CONFIGS["resnet18"]
    save_canonical(tmp_path / "w.safetensors", random_weights(spec, seed=3), spec)
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here / "worker_site"), str(here), str(USER_MODELS)]),
           "RR_CATALOGUE_BUGS": ",".join(f"{fw}={bug}" for fw, bug in ISOLATED.items())}
    proc = subprocess.run([sys.executable, "-m", "resnet_rosetta.cli.main", "parity", "--weights",
                           str(tmp_path / "w.safetensors"), "--size", str(size), "--grad-size", str(size), "--batch",
                           str(BATCH), "--steps", "1", "--dtype", "fp64", "--isolate", "--checks", ",".join(checks),
                           "--json", str(tmp_path / "p.json"), *participants], capture_output=True, text=True, env=env,
                          timeout=600)
    doc = json.loads((tmp_path / "p.json").read_text())
    assert proc.returncode == 1 and doc["settings"]["isolate"] and not doc["errors"], proc.stdout + proc.stderr
    for fw, entry in entries.items():
        first = next(c for c in doc["checks"] if (c["left"], c["right"]) == (fw, "oracle") and c["status"] == "FAIL")
        found = f"FAIL at {first['check']}/{first['first_divergence']['quantity']}"
        assert found == (entry.through_model if fw.startswith("user-") else f"FAIL at {entry.fp64}"), fw


def render() -> str:
    """docs/catalogue.md, from CATALOGUE and CONTROLS."""
    rows = [f"| {e.what} | {e.framework} | {e.planted} | FAIL at {e.fp64} | {e.fp32} | {e.through_model} |"
            for e in CATALOGUE]
    controls = [f"| no bug (control, {config}) | {fw} | - | pass | {v} | pass |" for (config, fw), v in CONTROLS.items()]
    missed = [e.what for e in CATALOGUE if not e.fp32.startswith("FAIL")]
    return "\n".join([
        "# The catalogue of broken ports", "",
        "Generated by `python tests/parity/test_catalogue.py` from the table in that test module; every row",
        "is asserted by `test_a_catalogued_bug_fails_in_fp64_where_it_is` (controls: `test_the_clean_ports_",
        "pass_where_the_bugs_are_planted`), and a test checks that this file is current.", "",
        "Each bug is planted in one framework (`tests/parity/catalogue_bugs.py`): by patching the framework's",
        "own function, this project's model or trainer, or the weight converter's rule. The fp64 check",
        "(`parity --dtype fp64`, bound 1e-10, no excuses) must FAIL with its first divergence (check/quantity)",
        "as listed, and the other frameworks pass against the oracle and each other (Flax, whose every",
        "training check compiles for seconds, beside the forward bugs only; its clean training checks are in",
        "`tests/parity/test_parity_fp64.py`). The fp32 column is what the default fp32 check (conditioning",
        "floors, ReLU branch-following) says of the same bug.",
        "Gradients are compared in backward order (fc first), so a backward bug is named where it starts.",
        "Models: resnet18 / ResNeXt structure at 4-16 channels, one block per stage, 32 px, batch 4, seed 0,",
        f"SGD lr {HYPER.lr:g}, momentum {HYPER.momentum:g}, weight decay {HYPER.weight_decay:g} (parity's defaults: a",
        f"step's decay is {HYPER.lr * HYPER.weight_decay:g} of each weight, 10 times the step bound), {STEPS} steps.", "",
        "The last column is the same bug written into a port a user wrote (`tests/parity/user_models/`:",
        "torchvision's names in torch, paddle.vision's in Paddle, this suite's in Flax; Paddle's and Flax's",
        "batch norms feed the running variance the unbiased batch variance, as torch does), checked as",
        "`parity --model FW=catalogue_ports:FACTORY` checks it (`test_the_same_bug_in_a_users_model_fails_",
        "through_model_where_it_is`): fp64 FAILs at the same check and quantity, named in the port's own",
        "names where they differ (`yours: ...`: a stage is read at the input or output of the user's block),",
        "while our three ports pass beside it. A bug of the model is written into the user's classes or",
        "module (e.g. Flax's `nn.BatchNorm` where the port's own norm belongs); a bug in a framework's",
        "function, the optimizer, the trainer or the converter reaches the user's model as it reaches ours.", "",
        "| bug | framework | planted in | fp64 | fp32 | a user's port, via --model (fp64) |",
        "|---|---|---|---|---|---|", *rows, *controls, "",
        f"fp32 alone misses {len(missed)} of {len(CATALOGUE)}: " + "; ".join(missed) + ".", "",
        "Until 2026-12-03 it missed the two weight-decay bugs too: parity's weight decay was 1e-4, which moved",
        "a step by 1e-6, 100 times under the bound; with 0.1 it moves a step by 1e-3, and fp32 names both.", "",
        "In isolated workers (`parity --isolate`) the bugs are planted by `tests/parity/worker_site/",
        "sitecustomize.py`: with that folder on PYTHONPATH, Python imports it at the start of every process,",
        "and in a parity worker it plants the bug `RR_CATALOGUE_BUGS` names for the worker's participant",
        "(e.g. `torch=torch_bn_train_eps,user-paddle=paddle_bn_keras_eps`: `user-FW` is the port given with",
        "`--model FW=...`, the bug written into the user-style models). Nothing in the package reads it.", ""])


def test_the_catalogue_doc_is_current() -> None:
    assert DOC.read_text() == render(), "docs/catalogue.md is stale: run `python tests/parity/test_catalogue.py`"


if __name__ == "__main__":
    DOC.write_text(render())
