"""Output piped into a reader that stops early (`resnet-rosetta list | head -1`)."""
from __future__ import annotations

import subprocess
import sys


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    pipeline = f"{sys.executable} -m resnet_rosetta.cli.main list | head -c 40"
    run = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=120)
    assert len(run.stdout) == 40
    assert run.stderr == ""
    assert run.returncode == 141  # 128 + SIGPIPE, as a shell reports a writer killed by the pipe
