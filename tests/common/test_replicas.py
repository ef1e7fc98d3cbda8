"""The dp replicas' watcher: a replica gone without its results is named once its launcher has had
`grace_s` to say so itself; live replicas and finished ones are never named."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from resnet_rosetta.common.replicas import Watch


def _gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_replica_gone_without_results_is_named_after_the_grace(tmp_path: Path) -> None:
    (tmp_path / "rank0.pid").write_text(str(os.getpid()))  # alive
    (tmp_path / "rank1.pid").write_text(str(_gone_pid()))
    (tmp_path / "rank1.progress").write_text("2")
    watch = Watch(tmp_path, grace_s=0.3)
    assert watch(0) is None  # the launcher's turn first
    time.sleep(0.4)
    assert watch(0) == watch.verdict == (f"rank 1 (pid {(tmp_path / 'rank1.pid').read_text()}) ended at step 2 "
                                         "without its results or an error (killed by a signal?)")


def test_a_replica_with_an_error_or_results_is_told_apart(tmp_path: Path) -> None:
    for rank in (0, 1, 2):
        (tmp_path / f"rank{rank}.pid").write_text(str(_gone_pid()))
    (tmp_path / "rank0.safetensors").write_bytes(b"")  # finished: never named
    (tmp_path / "rank1.error").write_text("RuntimeError: boom")
    (tmp_path / "rank2.pid").write_text("")  # being written: never named
    watch = Watch(tmp_path, grace_s=0.0)
    watch(0)
    assert watch(0) == "rank 1 failed: RuntimeError: boom"


def test_live_replicas_are_never_named(tmp_path: Path) -> None:
    (tmp_path / "rank0.pid").write_text(str(os.getpid()))
    watch = Watch(tmp_path, grace_s=0.0)
    assert watch(0) is None and watch(0) is None
