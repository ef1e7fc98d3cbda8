"""The guide's tests share session fixtures measured once: under pytest-xdist they must all run on one
worker (tests/guide/conftest.py puts them in one `xdist_group`, which pytest 9.2 with xdist 3.8 ignored)."""
from __future__ import annotations

import os

import pytest


def test_the_guide_group_reaches_the_scheduler(request: pytest.FixtureRequest) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        pytest.skip("one process: no workers to group over")
    assert request.node.nodeid.endswith("@guide"), request.node.nodeid
