"""`parity --dp-node` across two "machines": two invocations of each engine's own launcher on
127.0.0.1 (torchrun, python -m paddle.distributed.launch; JAX: two processes joined by
jax.distributed.initialize), as the README gives them. Rank 0's report must pass against the float64
oracle of its semantics under the fp32 dp bounds; the other node writes no report."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.replicas import HOST, free_port
from resnet_rosetta.common.spec import get_spec

TINY = get_spec("resnet18_small").replace(depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_width=8)
CLI = str(Path(sys.executable).with_name("resnet-rosetta"))
# the single-launcher run's variants and the running-statistics rules its engine keeps (test_dp_cli.py):
# two steps, so that the rules differ (after one step rank 0's broadcast and local statistics coincide)
EXPECTED = {"torch": {"torch": ["rank0_broadcast"]}, "paddle": {"paddle": ["local"]},
            "flax": {"flax": ["global"], "flax/shard_map": ["replica_mean"]}}


def _launch(framework: str, node: int, port: int, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """Node `node`'s command line and environment, as the README gives them."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1"}
    if framework == "torch":
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{HOST}:{port}", "--no-python", CLI], env
    if framework == "paddle":
        return [sys.executable, "-m", "paddle.distributed.launch", "--master", f"{HOST}:{port}", "--nnodes", "2",
                "--rank", str(node), "--nproc_per_node", "1", "--log_dir", str(tmp / f"log{node}"), CLI], env
    env.update(JAX_COORDINATOR_ADDRESS=f"{HOST}:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(node))
    return [CLI], env


def _two_nodes(framework: str, tmp: Path) -> tuple[list[str], list[int]]:
    """Both nodes' output and exit status; neither outlives the test."""
    save_canonical(tmp / "w.safetensors", random_weights(TINY, seed=2), TINY)
    args = ["parity", "--weights", str(tmp / "w.safetensors"), "--size", "16", "--batch", "4", "--data-parallel",
            "2", "--dp-steps", "2", "--frameworks", framework, "--dp-node", "--run-dir", str(tmp / "run"),
            "--json", str(tmp / "p.json"), "--timeout", "80"]
    port, procs = free_port(), []
    try:
        for node in (0, 1):
            cmd, env = _launch(framework, node, port, tmp)
            procs.append(subprocess.Popen(cmd + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, start_new_session=True))
        outputs = [p.communicate(timeout=85)[0] for p in procs]
        return outputs, [p.returncode for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle", "flax"])
def test_two_launcher_invocations_train_like_one_and_match_the_oracle(framework: str, tmp_path: Path) -> None:
    outputs, codes = _two_nodes(framework, tmp_path)
    assert codes == [0, 0], "\n====\n".join(o[-3000:] for o in outputs)
    reporters = [o for o in outputs if "parity: PASS" in o]
    assert len(reporters) == 1, outputs  # rank 0 reports; the other node says it has written its replica
    assert sum("rank 0 writes the report" in o for o in outputs) == 1, outputs
    doc = json.loads((tmp_path / "p.json").read_text())
    rows = {c["left"]: c for c in doc["checks"] if c["check"] == "dp" and c["right"] == "oracle"}
    assert doc["passed"] and set(rows) == set(EXPECTED[framework]), rows
    assert all(c["status"] == "pass" for c in rows.values()), rows
    pairs = {(c["left"], c["right"]) for c in doc["checks"] if c["check"] == "dp" and c["right"] != "oracle"}
    assert ("flax", "flax/shard_map") not in pairs  # global and per-replica batch norm are never compared
    for variant, measured in EXPECTED[framework].items():
        info = doc["data_parallel"]["archs"][TINY.name][variant]
        assert info["replicas"] == 2 and info["running_stats_measured"] == measured, info
        assert {"torch": "torchrun", "paddle": "paddle.distributed.launch",
                "flax": "jax.distributed.initialize"}[framework] in info["launcher"], info
        files = sorted(p.name for p in (tmp_path / "run" / "dp" / TINY.name / variant.replace("/", "-")).iterdir())
        assert {"rank0.safetensors", "rank1.safetensors"} <= set(files), files
