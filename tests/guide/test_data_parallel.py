"""Data parallel and batch norm (`resnet-rosetta explain data-parallel`): every fact of guide/topics.py's
'data-parallel' topic, proved by running each framework's own engine on 2 replicas (the session fixture
`dp_runs`: 2 SGD steps of a tiny ResNet on 2 CPU replicas) against the float64 oracle's semantics."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from resnet_rosetta.common.replicas import load_rank
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.parity import dp_oracle

# The claims these tests hold the engines to (test_flipped_claims.py flips each and expects a failure).
# Keys are the dp check's variants: `flax` is jit over a Mesh, `flax/shard_map` the per-replica variant.
CLAIMS = {
    "engine": {"torch": "DistributedDataParallel", "paddle": "paddle.DataParallel", "flax": "jax.jit over a Mesh",
               "flax/shard_map": "jax.shard_map"},
    "cpu_backend": {"torch": "gloo", "paddle": "gloo", "flax": "XLA CPU collectives (one process)",
                    "flax/shard_map": "XLA CPU collectives (one process)"},
    "gradient_reduction": {"torch": "mean", "paddle": "mean", "flax": "mean", "flax/shard_map": "mean"},
    "normalises_with": {"torch": "local", "paddle": "local", "flax": "sync", "flax/shard_map": "local"},
    "running_stats": {"torch": "rank0_broadcast", "paddle": "local", "flax": "global",
                      "flax/shard_map": "replica_mean"},
    "replicas_keep_identical_running_stats": {"torch": False, "paddle": False, "flax": True, "flax/shard_map": True},
    "sync_batch_norm_on_cpu": {"torch": "unsupported", "paddle": "unsupported", "flax": "available"},
    "sync_batch_norm_cpu_error": {"torch": "SyncBatchNorm expected input tensor to be on GPU",
                                  "paddle": "sync_batch_norm"},
}
# each reduction as the factor on the mean of the replicas' gradients
REDUCTION_FACTOR = {"mean": 1.0, "sum": 2.0}
VARIANTS = tuple(CLAIMS["engine"])


def _section(dp_runs: Any, variant: str) -> dict[str, Any]:
    return dp_runs.found.section[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_engines_and_backends(variant: str, dp_runs: Any) -> None:
    info = _section(dp_runs, variant)
    assert CLAIMS["engine"][variant] in info["engine"] and info["backend"] == CLAIMS["cpu_backend"][variant]
    assert info["replicas"] == 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_are_averaged(variant: str, dp_runs: Any) -> None:
    """After step 1, rank 0's parameters are the oracle's SGD step on the claimed reduction of the
    replicas' gradients (a sum would be the mean with twice the learning rate; no weight decay here)."""
    case = replace(dp_runs.case, lr=dp_runs.case.lr * REDUCTION_FACTOR[CLAIMS["gradient_reduction"][variant]])
    expected, _, _ = dp_oracle.reference(case, _section(dp_runs, variant)["batch_norm"], dp_runs.gates[variant])
    rank0 = load_rank(dp_runs.folder(variant), 0)
    params = [k for k in expected if k.startswith("dp/step1:")]
    assert params and all(r.passed for c in dp_runs.found.comparisons if c.left == variant for r in c.rows)
    for key in params:
        found = rank0[f"params/1/{key.partition(':')[2]}"]
        assert compare(found, expected[key], tolerance("steps")).passed, key


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_norm_normalises_with(variant: str, dp_runs: Any) -> None:
    """The first step's loss (a train-mode forward) is the oracle's under the claimed statistics:
    each replica's own shard (`local`) or the whole global batch (`sync`)."""
    mode = CLAIMS["normalises_with"][variant]
    assert _section(dp_runs, variant)["batch_norm"] == mode
    expected, _, _ = dp_oracle.reference(replace(dp_runs.case, batches=dp_runs.case.batches[:1]), mode)
    losses = [float(load_rank(dp_runs.folder(variant), r)["loss/1"][0]) for r in range(2)]
    found = np.array([sum(losses) / len(losses)])
    assert compare(found, expected["dp/step1.loss"], tolerance("loss")).passed, (found, expected["dp/step1.loss"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_running_statistics_kept(variant: str, dp_runs: Any) -> None:
    """Which rule of parity/dp_oracle.py RULES each replica's running statistics follow after 2 steps
    (measured against every rule's prediction), and whether the replicas end with identical ones."""
    info = _section(dp_runs, variant)
    assert CLAIMS["running_stats"][variant] in info["running_stats_measured"], info["running_stats_measured"]
    assert info["replicas_keep_identical_running_stats"] == CLAIMS["replicas_keep_identical_running_stats"][variant]


@pytest.mark.parametrize("framework", ("torch", "paddle", "flax"))
def test_sync_batch_norm_on_cpu(framework: str, dp_runs: Any) -> None:
    sync = _section(dp_runs, framework)["sync_batch_norm"]
    assert sync["status"] == CLAIMS["sync_batch_norm_on_cpu"][framework], sync
    if framework in CLAIMS["sync_batch_norm_cpu_error"]:
        assert CLAIMS["sync_batch_norm_cpu_error"][framework] in sync["reason"], sync
