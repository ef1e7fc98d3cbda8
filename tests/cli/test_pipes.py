"""Output piped into a reader that has left (`resnet-rosetta list | head -1`)."""
from __future__ import annotations

import os
import subprocess
import sys


def test_a_reader_that_has_left_gets_no_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `head` has exited
    try:
        run = subprocess.run([sys.executable, "-m", "resnet_rosetta.cli.main", "list"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert run.stderr == ""
    assert run.returncode == 141  # 128 + SIGPIPE, as a shell reports a writer killed by the pipe
