"""Test-only: plants a catalogued bug (tests/parity/catalogue_bugs.py) in a parity worker.

Python imports `sitecustomize` at the start of every process whose path has this folder (the tests
put it and tests/parity on PYTHONPATH). In a parity worker (`python -m resnet_rosetta.common.process
resnet_rosetta.parity.isolation:worker ARGS`, ARGS a JSON list whose third item is the participant) it
plants the bug `RR_CATALOGUE_BUGS` ("torch=BUG,user-paddle=BUG,...") names for that participant, for
the life of the process: in our port, or for a user's model (`user-FW`, from `--model`) written into
the user-style models of tests/parity/user_models/ (on PYTHONPATH too). Any other process, or no
variable: nothing happens.
"""
from __future__ import annotations

import json
import os
import sys


def _plant() -> None:
    bugs = os.environ.get("RR_CATALOGUE_BUGS")
    if not bugs or sys.argv[1:2] != ["resnet_rosetta.parity.isolation:worker"]:
        return
    participant = json.loads(open(sys.argv[2]).read())[2]
    wanted = dict(item.split("=", 1) for item in bugs.split(","))
    if participant in wanted:
        import pytest

        from catalogue_bugs import plant
        plant(wanted[participant], pytest.MonkeyPatch(), user=participant.startswith("user-"))


_plant()
