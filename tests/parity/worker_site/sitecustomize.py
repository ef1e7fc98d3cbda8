"""Test-only: plants a catalogued bug (tests/parity/catalogue_bugs.py) in a parity worker.

Python imports `sitecustomize` at the start of every process whose path has this folder (the tests
put it and tests/parity on PYTHONPATH). In a parity worker (`python -m resnet_rosetta.common.process
resnet_rosetta.parity.isolation:worker ARGS`, ARGS a JSON list whose third item is the framework) it
plants the bug `RR_CATALOGUE_BUGS` ("torch=BUG,paddle=BUG,...") names for that framework, for the
life of the process. Any other process, or no variable: nothing happens.
"""
from __future__ import annotations

import json
import os
import sys


def _plant() -> None:
    bugs = os.environ.get("RR_CATALOGUE_BUGS")
    if not bugs or sys.argv[1:2] != ["resnet_rosetta.parity.isolation:worker"]:
        return
    framework = json.loads(open(sys.argv[2]).read())[2]
    wanted = dict(item.split("=", 1) for item in bugs.split(","))
    if framework in wanted:
        import pytest

        from catalogue_bugs import plant
        plant(wanted[framework], pytest.MonkeyPatch())


_plant()
