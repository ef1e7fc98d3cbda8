"""The float64 oracle of data-parallel training: K SGD steps on global batches split over N replicas.

Batch norm is per replica (`local`: each replica normalises its shard with the shard's statistics,
the gradient is the mean of the replicas' gradients) or global (`sync`: one forward over the whole
batch). Running statistics do not change any train-mode forward, so the oracle records each
shard's batch statistics per step and derives what every replica keeps under each rule an engine
may follow (`RULES`); which one an engine follows is measured against them, not assumed. Like the
single-process steps check, step k + 1 may start from a framework's own state after step k, and
the backward may follow its ReLU branches near the kinks (common/oracle.py).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from resnet_rosetta.common.canonical import Weights, is_buffer
from resnet_rosetta.common.oracle import GateMatch, Oracle
from resnet_rosetta.common.replicas import ReplicaCase

# rule -> what each replica's running statistics are after every step
RULES = {
    "local": "each replica updates its own from its own shard",
    "rank0_broadcast": "rank 0's are copied to every replica before each forward, which then updates them "
                       "from its own shard",
    "replica_mean": "every replica updates from its own shard, then all are replaced by their mean",
    "global": "one set, updated from the whole batch's statistics",
}
LOCAL_RULES = ("local", "rank0_broadcast", "replica_mean")

Gates = Mapping[int, Mapping[str, np.ndarray]]  # step k -> ReLU site -> global-batch branches
States = Mapping[int, tuple[Weights, Weights]]  # step k -> (parameters, momentum) after it


def reference(case: ReplicaCase, batch_norm: str, gates: Gates | None = None, states: States | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, list[Weights]], GateMatch]:
    """(`dp/step{k}.loss` and `dp/step{k}:PARAM` outputs, rule -> per-replica running statistics
    after the last step, how the followed branches differed from float64's)."""
    m = case.spec.bn_momentum
    weights = {k: np.asarray(v, np.float64) for k, v in case.weights.items()}
    start = {k: v for k, v in weights.items() if is_buffer(k)}
    zeros = {k: np.zeros_like(v) for k, v in start.items()}  # so the updated buffers are m * batch statistic
    params: Weights = {k: v for k, v in weights.items() if not is_buffer(k)}
    momentum: Weights = {}
    out: dict[str, np.ndarray] = {}
    feeds: list[list[Weights]] = []
    match = GateMatch()
    for k, (bx, by) in enumerate(case.batches, start=1):
        if states and k - 1 in states:
            params, momentum = dict(states[k - 1][0]), dict(states[k - 1][1])
        follow = (gates or {}).get(k)
        ranks = [None] if batch_norm == "sync" else list(range(case.replicas))
        losses, grads, step_feeds = [], [], []
        for r in ranks:
            def part(a: np.ndarray) -> np.ndarray:
                return a if r is None else case.shard(a, r)
            oracle = Oracle(case.spec, {**params, **zeros})
            loss, g = oracle.loss_and_grads(part(bx), part(by), None if follow is None else
                                            {site: part(v) for site, v in follow.items()})
            match += oracle.gate_match
            losses.append(loss)
            grads.append(g)
            step_feeds.append({n: oracle.weights[n] / m for n in start})
        feeds.append(step_feeds)
        for name in params:
            d = np.mean([g[name] for g in grads], axis=0) + case.weight_decay * params[name]
            momentum[name] = d if k == 1 else case.momentum * momentum[name] + d
            params[name] = params[name] - case.lr * momentum[name]
        out[f"dp/step{k}.loss"] = np.array([np.mean(losses)])
        out.update({f"dp/step{k}:{n}": v for n, v in params.items()})
    return out, running_statistics(start, feeds, m, case.replicas, batch_norm == "sync"), match


def running_statistics(start: Weights, feeds: list[list[Weights]], m: float, replicas: int, whole: bool = False
                       ) -> dict[str, list[Weights]]:
    """Per rule, each replica's running statistics after the last step, from the batch statistics
    fed at each step (`feeds[k][r]`: shard r's; with `whole`, one entry: the whole batch's)."""
    def fold(old: Weights, feed: Weights) -> Weights:
        return {n: (1 - m) * old[n] + m * feed[n] for n in old}
    if whole:
        kept = start
        for (feed,) in feeds:
            kept = fold(kept, feed)
        return {"global": [kept] * replicas}
    local, broadcast, mean = [start] * replicas, [start] * replicas, start
    for step in feeds:
        local = [fold(local[r], f) for r, f in enumerate(step)]
        broadcast = [fold(broadcast[0], f) for f in step]
        folded = [fold(mean, f) for f in step]
        mean = {n: np.mean([f[n] for f in folded], axis=0) for n in start}
    return {"local": local, "rank0_broadcast": broadcast, "replica_mean": [mean] * replicas}
