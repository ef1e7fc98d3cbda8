"""Functions tests/common/test_process.py runs in child processes."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from resnet_rosetta.common import process


def add(a: int, b: int) -> dict:
    return {"sum": a + b, "pid_differs": os.getpid() != os.getppid()}


def boom() -> None:
    raise ValueError("the child broke")


def hang_with_grandchild(pid_file: str) -> None:
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(pid_file, "w") as f:
        f.write(str(grandchild.pid))
    time.sleep(60)


def save_then_hang() -> None:
    process.save_result({"partial": True})
    time.sleep(60)


def clean_up_on_interrupt(marker: str) -> None:
    """Wait; on Ctrl-C (SIGINT) write `marker` before exiting, as train's checkpointing does."""
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        with open(marker, "w") as f:
            f.write("cleaned up")
        raise


def executable() -> str:
    return sys.executable


if __name__ == "__main__":
    print(f"{sys.argv[1]} from the child")


def return_leaving_grandchild(pid_file: str) -> str:
    """Return at once, a sleeping grandchild left behind (as a failed launcher may leave replicas)."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(pid_file, "w") as f:
        f.write(str(grandchild.pid))
    return "done"
