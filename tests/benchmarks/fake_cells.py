"""Stand-ins for a benchmark cell process (`sweep.CELL_TARGET`): most save what a cell stopped
during its reference pair leaves behind, then end the way their name says; `tf32_environment`
returns the TF32 variables it was started with. No framework."""
from __future__ import annotations

import os
import signal
import sys
import time

from resnet_rosetta.common import process

PENDING_RECORD = {"status": "ok", "message": "",
                  "metrics": {"img_s_median": 12.5,
                              "pair": {"status": "pending", "message": "the reference pair was being measured"}},
                  "settings": {}, "env": {}}


def pending_then_hang(cell: dict) -> None:
    process.save_result(PENDING_RECORD)
    time.sleep(60)


def pending_then_exit_3(cell: dict) -> None:
    process.save_result(PENDING_RECORD)
    sys.exit(3)


def pending_then_sigkill(cell: dict) -> None:
    process.save_result(PENDING_RECORD)
    os.kill(os.getpid(), signal.SIGKILL)


def exit_4(cell: dict) -> None:
    sys.exit(4)


def tf32_environment(cell: dict) -> dict:
    """A result holding the TF32 variables the cell process was started with."""
    return {"status": "ok", "message": "", "metrics": {}, "settings": {},
            "env": {k: os.environ.get(k) for k in ("NVIDIA_TF32_OVERRIDE", "RESNET_ROSETTA_TF32")}}
