"""`benchmarks/gpu_check.sh`, the prepared first run on a GPU machine, checked without a GPU: its
syntax (`bash -n`), every test id it names exists, and it names every test of the GPU runner file."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _test_ids() -> list[tuple[str, str]]:
    return re.findall(r"(tests/[\w/]+\.py)::(\w+)", SCRIPT.read_text())


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_parses():
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}


def test_every_named_test_exists_and_every_gpu_runner_test_is_named():
    ids = _test_ids()
    assert len(ids) >= 5
    for path, name in ids:
        assert name in _functions(ROOT / path), f"{path}::{name} named by gpu_check.sh does not exist"
    runner_tests = {n for n in _functions(ROOT / "tests/frameworks/test_gpu_runners.py") if n.startswith("test_")}
    assert runner_tests == {name for path, name in ids if path.endswith("test_gpu_runners.py")}
