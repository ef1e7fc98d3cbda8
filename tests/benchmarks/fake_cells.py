"""Stand-ins for a benchmark cell process (`sweep.CELL_TARGET`): each saves what a cell stopped
during its reference pair leaves behind, then ends the way its name says. No framework."""
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
