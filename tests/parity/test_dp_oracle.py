"""The float64 oracle of data-parallel training (parity/dp_oracle.py): per-replica and global batch
norm against the single-process oracle, and the running-statistics rules on numbers worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_rosetta.common.replicas import ReplicaCase, diagnose, mark_progress
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.parity import dp_oracle, engine

TINY = get_spec("resnet18_small").replace(depths=(1, 1, 1, 1), widths=(4, 8, 8, 8), stem_width=4)


def _cases(replicas: int, steps: int = 2) -> tuple[engine.ParityCase, ReplicaCase]:
    pc = engine.ParityCase.seeded(TINY, 8, 4, seed=5, hyper=engine.Hyper(steps=steps))
    h = pc.hyper
    return pc, ReplicaCase(TINY, pc.weights, pc.batches, replicas, h.lr, h.momentum, h.weight_decay)


def test_one_replica_is_the_single_process_steps_oracle() -> None:
    pc, case = _cases(replicas=1)
    single, _ = engine._oracle_training(pc, ("steps",), {})
    dp, kept, _ = dp_oracle.reference(case, "local")
    for key, value in dp.items():
        mine = single[key.replace("dp/", "steps/")]
        np.testing.assert_allclose(value, mine, rtol=1e-12, atol=0, err_msg=key)
    assert kept["local"][0].keys() == {k for k in pc.weights if k.endswith(("running_mean", "running_var"))}


def test_global_batch_norm_over_two_replicas_is_one_replica() -> None:
    _, one = _cases(replicas=1)
    _, two = _cases(replicas=2)
    a, kept_a, _ = dp_oracle.reference(one, "local")
    b, kept_b, _ = dp_oracle.reference(two, "sync")
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-12, atol=0) for k in a)
    assert list(kept_b) == ["global"] and len(kept_b["global"]) == 2
    for name, value in kept_a["local"][0].items():
        np.testing.assert_allclose(kept_b["global"][1][name], value, rtol=1e-12)


def test_per_replica_batch_norm_moves_the_step_beyond_the_fp32_bound() -> None:
    """Local vs global statistics must differ by more than the steps tolerance at this size, or
    the dp rows could not tell an engine's batch-norm mode apart."""
    _, two = _cases(replicas=2, steps=1)
    local, _, _ = dp_oracle.reference(two, "local")
    sync, _, _ = dp_oracle.reference(two, "sync")
    worst = max(np.max(np.abs(local[k] - sync[k])) / np.max(np.abs(sync[k])) for k in sync)
    assert worst > 100 * 1e-4


def test_each_replica_normalises_its_own_contiguous_shard() -> None:
    from resnet_rosetta.common.oracle import Oracle

    _, two = _cases(replicas=2, steps=1)
    out, _, _ = dp_oracle.reference(two, "local")
    bx, by = two.batches[0]
    losses = [Oracle(TINY, two.weights).loss_and_grads(bx[r * 2:(r + 1) * 2], by[r * 2:(r + 1) * 2])[0]
              for r in range(2)]
    assert out["dp/step1.loss"][0] == pytest.approx(np.mean(losses), rel=1e-12)


def test_running_statistics_rules_worked_by_hand() -> None:
    start = {"bn.running_mean": np.array([0.0])}
    feeds = [[{"bn.running_mean": np.array([2.0])}, {"bn.running_mean": np.array([4.0])}],
             [{"bn.running_mean": np.array([6.0])}, {"bn.running_mean": np.array([8.0])}]]
    rules = dp_oracle.running_statistics(start, feeds, 0.5, 2)
    value = {rule: [float(r["bn.running_mean"][0]) for r in ranks] for rule, ranks in rules.items()}
    # local: 0 -> 1 -> 3.5 (rank 0), 0 -> 2 -> 5 (rank 1); broadcast: both start step 2 from rank 0's 1
    assert value == {"local": [3.5, 5.0], "rank0_broadcast": [3.5, 4.5], "replica_mean": [4.25, 4.25]}
    assert dp_oracle.running_statistics(start, [[f[0]] for f in feeds], 0.5, 2, whole=True)["global"][1] == {
        "bn.running_mean": np.array([3.5])}


def test_a_failed_replica_is_named(tmp_path) -> None:
    for rank, step in ((0, 2), (1, 1)):
        mark_progress(tmp_path, rank, step)
    assert diagnose(tmp_path, 2).startswith("rank 1 never reached step 2")
    (tmp_path / "rank1.error").write_text("RuntimeError: boom")
    assert diagnose(tmp_path, 2) == "rank 1 failed: RuntimeError: boom"
    assert diagnose(tmp_path / "none", 2) == "no replica started"
