"""The `dp` check: every framework trains K SGD steps on global batches split over N replicas with
its own engine (`frameworks/<fw>/parallel.py`), compared with the float64 oracle of the same
semantics (`dp_oracle.py`) and with each other where the semantics match.

Each framework's job runs in a fresh process (common/process.py: time limit, own process group);
inside it the engine's own launcher starts the replicas, rendezvous on 127.0.0.1 at a free port.
A job that fails or overruns names the replica at fault from the files the replicas leave
(common/replicas.py). With `node`, this process is itself one replica of a multi-node launch
(torchrun, paddle.distributed.launch, jax.distributed): the engine reads the launcher's environment,
every replica writes its files into the shared run folder and rank 0 alone compares and reports.
The `data_parallel` section records, per variant, the engine, backend, launcher, batch-norm mode,
the running-statistics rule expected and the ones measured.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common import process
from resnet_rosetta.common.canonical import is_buffer
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.replicas import ReplicaCase, Watch, diagnose, expect_rank_files, load_rank
from resnet_rosetta.common.tolerance import compare, tolerance
from . import dp_oracle
from .engine import ORACLE, Comparison, ParityCase, Row

CHECK = "dp"
DEFAULT_STEPS = 3


def with_dp(checks: tuple[str, ...], replicas: int | None, batch: int, steps: int) -> tuple[str, ...]:
    """The checks of a run: `dp` added when replicas are asked for (which are checked first), and
    refused without them."""
    if replicas is None:
        if CHECK in checks:
            raise UserError("--checks dp needs --data-parallel N (the number of replicas)")
        return checks
    check_replicas(replicas, batch, steps)
    return checks if CHECK in checks else (*checks, CHECK)


def check_replicas(replicas: int, batch: int, steps: int) -> None:
    """Refuse a replica count the global batch cannot be split over evenly (one line, UserError)."""
    if replicas < 2:
        raise UserError(f"--data-parallel expects N >= 2 replicas, found {replicas}")
    if replicas > batch or batch % replicas:
        raise UserError(f"--data-parallel {replicas} must divide --batch {batch} into equal shards of at least "
                        f"one sample, found {batch} / {replicas}")
    if steps < 1:
        raise UserError(f"--dp-steps expects K >= 1, found {steps}")


@dataclass
class DpFound:
    """The dp check's comparisons, failures, unsupported features and the `data_parallel` section."""

    comparisons: list[Comparison] = field(default_factory=list)
    section: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    report: bool = True  # False in a multi-node replica other than rank 0: rank 0 reports


def run_cases(cases: list[ParityCase], names: tuple[str, ...], replicas: int, steps: int, seed: int,
              run_dir: Path, timeout: float, pythons: dict[str, str] | None = None, node: bool = False,
              port: int | None = None) -> DpFound:
    """The dp check of every architecture: the case's weights, K fresh global batches of its size;
    each framework's job under its `pythons` interpreter (default: this one), rendezvous at `port`
    (default: a free one), or with `node` this process as one replica of a launcher's multi-node run."""
    found = DpFound(section={"replicas": replicas, "steps": steps, "archs": {}})
    for case in cases:
        drawn = ParityCase.seeded(case.spec, int(case.x.shape[-1]), len(case.x), seed, case.weights,
                                  replace(case.hyper, steps=steps), grad_size=int(case.batches[0][0].shape[-1]))
        h = case.hyper
        one = run_dp(ReplicaCase(case.spec, drawn.weights, drawn.batches, replicas, h.lr, h.momentum, h.weight_decay),
                     names, run_dir / "dp" / case.spec.name, timeout, pythons, node, port)
        found.report = found.report and one.report
        found.comparisons += one.comparisons
        found.errors.update({f"{case.spec.name} {k}": v for k, v in one.errors.items()})
        found.unsupported.update(one.unsupported)
        found.section["archs"][case.spec.name] = one.section
    return found


def terminal(section: dict[str, Any]) -> str:
    """Per architecture and variant: engine, batch-norm mode and how running statistics were kept."""
    lines = [f"\ndata parallel: {section['replicas']} replicas, {section['steps']} SGD steps"]
    for arch, variants in section["archs"].items():
        for variant, info in variants.items():
            measured = ", ".join(info["running_stats_measured"]) or "none of the known rules"
            lines.append(f"  {arch} · {variant}: {info['engine']} over {info['backend']}; batch norm "
                         f"{info['batch_norm']}; running statistics expected {info['running_stats_rule']}, "
                         f"measured {measured}; SyncBatchNorm {info['sync_batch_norm']['status']}")
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    """The `data_parallel` section as a Markdown table ('' without one)."""
    section = doc.get("data_parallel")
    if not section:
        return ""
    out = [f"## Data parallel ({section['replicas']} replicas, {section['steps']} SGD steps)", "",
           "| arch | variant | engine | backend | launcher | batch norm | running statistics (expected; measured) "
           "| SyncBatchNorm |", "|---|---|---|---|---|---|---|---|"]
    for arch, variants in section["archs"].items():
        for variant, i in variants.items():
            sync = i["sync_batch_norm"]
            out.append(f"| {arch} | {variant} | {i['engine']} | {i['backend']} | {i['launcher']} | {i['batch_norm']} "
                       f"| {i['running_stats_rule']}; {', '.join(i['running_stats_measured']) or 'none'} "
                       f"| {sync['status']}{': ' + sync['reason'] if sync.get('reason') else ''} |")
    return "\n".join(out) + "\n"


def run_dp(case: ReplicaCase, names: tuple[str, ...], folder: Path, timeout: float,
           pythons: dict[str, str] | None = None, node: bool = False, port: int | None = None) -> DpFound:
    """Run every framework's dp job, the oracle of each variant's semantics and the comparisons."""
    case_file = folder / "case.safetensors"
    if not node:  # a node's replicas create their folders once the launcher's world is checked
        folder.mkdir(parents=True, exist_ok=True)
        case.save(case_file)
    found, runs = DpFound(), {}
    for name in names:
        if not node:  # a node's first line is its verdict, or the launcher's world refused
            print(f"parity: {case.spec.name}: dp, {name} on {case.replicas} replicas", file=sys.stderr)
        try:
            infos = _node(name, case, folder, timeout) if node else \
                _job(name, case, case_file, folder, timeout, (pythons or {}).get(name), port)
            if infos is None:
                return DpFound(report=False)
            for info in infos:
                runs[info["variant"]] = (info, variant_outputs(folder / info["variant"].replace("/", "-"),
                                                               case.replicas))
        except process.ProcessFailed as exc:
            found.errors[f"{name} dp"] = str(exc)
    oracles = {}
    for variant, (info, (outputs, gates, states)) in runs.items():
        ref, kept, match = dp_oracle.reference(case, info["batch_norm"], gates, states)
        measured = [rule for rule, ranks in kept.items() if _same_buffers(outputs, ranks)]
        found.section[variant] = {**info, "running_stats_measured": measured,
                                  "running_stats_rule_means": dp_oracle.RULES[info["running_stats_rule"]],
                                  "replicas_keep_identical_running_stats": _identical(outputs, case.replicas)}
        if info["sync_batch_norm"]["status"] == "unsupported":
            found.unsupported[f"{variant} dp sync batch norm"] = info["sync_batch_norm"]["reason"]
        expected = {**ref, **_buffer_outputs(kept[info["running_stats_rule"]])}
        oracles[variant] = (expected, kept)
        note = f"oracle followed {match.flips} ReLU branch(es) near zero" if match.flips else ""
        found.comparisons.append(_compare(case.spec.name, variant, ORACLE, outputs, expected, {}, note))
    variants = list(runs)
    for i, a in enumerate(variants):
        for b in variants[i + 1:]:
            shared = _shared_semantics(runs[a][0], runs[b][0], oracles[a])
            if shared:
                shift = {k: oracles[a][0][k] - oracles[b][0][k] for k in shared}
                found.comparisons.append(_compare(case.spec.name, a, b, runs[a][1][0],
                                                  {k: runs[b][1][0][k] for k in shared}, shift))
    return found


def job(name: str, case_file: str, folder: str, timeout: float, port: int | None = None) -> list[dict[str, Any]]:
    """In the job process: the framework's own launcher trains every replica."""
    return frameworks.load(name, "parallel").run(case_file, folder, timeout, port)


def _node(name: str, case: ReplicaCase, folder: Path, timeout: float) -> list[dict[str, Any]] | None:
    """This process as one replica of a launcher's run: the variants on rank 0 (every replica's
    file checked), None on the others. The case file is this process's own: the run folder is shared."""
    with tempfile.TemporaryDirectory(prefix="rr-dp-node-") as tmp:
        case.save(Path(tmp) / "case.safetensors")
        infos = frameworks.load(name, "parallel").node(str(Path(tmp) / "case.safetensors"), str(folder), timeout)
    for info in infos or ():
        expect_rank_files(folder / info["variant"].replace("/", "-"), case.replicas)
    return infos


def _job(name: str, case: ReplicaCase, case_file: Path, folder: Path, timeout: float,
         python: str | None, port: int | None = None) -> list[dict[str, Any]]:
    env = {**os.environ}
    if name == "flax":  # N host devices exist only if set before JAX starts
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={case.replicas}".strip()
        env["JAX_PLATFORMS"] = "cpu"
    watch = Watch(folder / name)  # a replica gone without its results ends the job at once, named
    outcome = process.run_function(f"{__name__}:job", name, str(case_file), str(folder), timeout, port,
                                   timeout=timeout, env=env, cwd=folder, python=python, watch=watch)
    if outcome.returncode == 0 and outcome.has_result:
        return outcome.result
    raise process.ProcessFailed(f"{name} dp: {watch.verdict or diagnose(folder / name, case.replicas)} "
                                f"({outcome.describe()})")


def variant_outputs(folder: Path, replicas: int) -> tuple[dict[str, np.ndarray], dict[int, dict[str, np.ndarray]],
                                                  dict[int, tuple[dict, dict]]]:
    """A variant's rank files as (outputs named like the oracle's, step -> global-batch ReLU
    branches, step -> rank 0's parameters and momentum after it)."""
    ranks = [load_rank(folder, r) for r in range(replicas)]
    steps = sorted(int(k.split("/")[1]) for k in ranks[0] if k.startswith("loss/"))
    outputs: dict[str, np.ndarray] = {}
    gates: dict[int, dict[str, np.ndarray]] = {}
    states: dict[int, tuple[dict, dict]] = {}
    for k in steps:
        params = _under(ranks[0], f"params/{k}/")
        outputs[f"dp/step{k}.loss"] = np.array([np.mean([float(r[f"loss/{k}"][0]) for r in ranks])])
        outputs.update({f"dp/step{k}:{n}": v for n, v in params.items()})
        gates[k] = {site: np.concatenate([_under(r, f"gates/{k}/")[site] for r in ranks])
                    for site in _under(ranks[0], f"gates/{k}/")}
        states[k] = (params, _under(ranks[0], f"momentum/{k}/"))
    outputs.update(_buffer_outputs([_under(r, "buffers/") for r in ranks]))
    return outputs, gates, states


def _under(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _buffer_outputs(ranks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"dp/rank{r}:{n}": v for r, buffers in enumerate(ranks) for n, v in buffers.items()}


def _same_buffers(outputs: dict[str, np.ndarray], ranks: list[dict[str, np.ndarray]]) -> bool:
    """Do a variant's running statistics match one rule's prediction, on every replica?"""
    tol = tolerance("running_stats")
    return all(compare(outputs[k], v, tol).passed for k, v in _buffer_outputs(ranks).items())


def _identical(outputs: dict[str, np.ndarray], replicas: int) -> bool:
    ranks = [_under(outputs, f"dp/rank{r}:") for r in range(replicas)]
    return all(np.array_equal(ranks[0][n], other[n]) for other in ranks[1:] for n in ranks[0])


def _shared_semantics(a: dict[str, Any], b: dict[str, Any], oracle_a: tuple[dict, dict]) -> list[str]:
    """The quantities two variants must agree on: none across batch-norm modes; else every loss and
    parameter, and each replica's running statistics where both rules predict the same ones."""
    if a["batch_norm"] != b["batch_norm"]:
        return []
    expected, kept = oracle_a
    keys = [k for k in expected if not k.startswith("dp/rank")]
    ours, theirs = kept[a["running_stats_rule"]], kept[b["running_stats_rule"]]
    for r, (mine, other) in enumerate(zip(ours, theirs)):
        if all(np.allclose(mine[n], other[n], rtol=1e-12, atol=0) for n in mine):
            keys += [f"dp/rank{r}:{n}" for n in mine]
    return keys


def _compare(arch: str, left: str, right: str, outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray],
             shift: dict[str, np.ndarray], note: str = "") -> Comparison:
    """Every quantity of `expected` (moved by `shift`, the two oracles' difference in a pair),
    summarised as each step's loss, its worst parameter and each replica's worst running statistic."""
    groups: dict[str, list[Row]] = {}
    for key, ref in expected.items():
        quantity = key.split("/", 1)[1]
        tensor = quantity.partition(":")[2]
        kind = "loss" if quantity.endswith("loss") else "running_stats" if is_buffer(tensor) else "steps"
        tol = tolerance(kind, pairwise=right != ORACLE)
        c = compare(outputs[key], ref + shift.get(key, 0.0), tol)
        groups.setdefault(quantity.partition(":")[0], []).append(Row(quantity, c.max_abs, c.max_rel, tol, c.passed))
    rows = []
    for group, members in groups.items():
        worst = max(members, key=lambda r: r.max_rel / r.tolerance)
        if len(members) == 1:
            rows.append(worst)
            continue
        what = "running_stats" if group.startswith("rank") else "params"
        rows.append(Row(f"{group}.{what} (worst: {worst.quantity.partition(':')[2]})", worst.max_abs, worst.max_rel,
                        worst.tolerance, all(m.passed for m in members)))
    return Comparison(arch, CHECK, left, right, rows, note)
