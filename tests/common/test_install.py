"""What `./run` installs (common/install.py): never PyPI's CPU Paddle over Paddle's GPU wheel, the `gpu`
extra on a GPU machine; decided on fake installed-distribution lists, then `./run` itself driven
through bash with a fake venv Python that records its pip calls."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_rosetta.common.install import canonical, extras, requirements, without_deps

ROOT = Path(__file__).resolve().parents[2]
REQUIRES = ["numpy>=1.26", "PaddlePaddle>=3.0", "torch<=2.14.1,>=2.4",
            'pytest>=8; extra == "test"', 'jax[cuda13]>=0.7.2; extra == "gpu"',
            'nvidia-smi-tools; sys_platform == "linux" and extra == "gpu"']


def test_names_compare_as_pip_compares_them():
    assert canonical("PaddlePaddle_GPU") == "paddlepaddle-gpu"
    assert canonical("jax_cuda13..Plugin") == "jax-cuda13-plugin"


def test_paddleclas_goes_in_without_its_pinned_dependencies_with_the_tests():
    assert without_deps(["test", "gpu"]) == ["paddleclas==2.6.0"] and without_deps(["gpu"]) == []


def test_gpu_extra_on_a_gpu_machine_or_beside_a_gpu_paddle():
    assert extras({"numpy", "paddlepaddle"}, has_gpu=False) == ["test"]
    assert extras({"numpy", "paddlepaddle"}, has_gpu=True) == ["test", "gpu"]
    assert extras({"paddlepaddle-gpu"}, has_gpu=False) == ["test", "gpu"]


def test_cpu_paddle_is_never_installed_beside_the_gpu_wheel():
    cpu = requirements(REQUIRES, ["test"], {"numpy", "paddlepaddle"})
    assert cpu == ["numpy>=1.26", "PaddlePaddle>=3.0", "torch<=2.14.1,>=2.4", "pytest>=8"]
    gpu = requirements(REQUIRES, ["test", "gpu"], {"paddlepaddle-gpu", "numpy"})
    assert gpu[:3] == ["numpy>=1.26", "torch<=2.14.1,>=2.4", "pytest>=8"]  # any spelling of the CPU wheel left out
    # other conditions of a marker stay; only the extra is taken off
    assert gpu[-2:] == ["jax[cuda13]>=0.7.2", 'nvidia-smi-tools; sys_platform == "linux"']


def _fake_checkout(tmp_path: Path, gpu_paddle: bool) -> tuple[Path, Path, dict]:
    """A copy of ./run and common/ whose .venv/bin/python logs `-m pip` calls and runs the rest with
    this Python; a fake `paddlepaddle-gpu` distribution on PYTHONPATH when `gpu_paddle`."""
    work = tmp_path / "checkout"
    (work / "common").mkdir(parents=True)
    for name in ("run", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    for name in ("__init__.py", "install.py", "host.py"):
        shutil.copy(ROOT / "common" / name, work / "common" / name)
    log, site = tmp_path / "pip.log", tmp_path / "site"
    site.mkdir()
    if gpu_paddle:
        info = site / "paddlepaddle_gpu-3.3.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: paddlepaddle-gpu\nVersion: 3.3.1\n")
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "$*" >> {log}; exit 0; fi\n'
                                    f'exec {sys.executable} "$@"\n')
    (bin_dir / "resnet-rosetta").write_text("#!/bin/sh\necho resnet-rosetta \"$@\"\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(site)}
    return work, log, env


@pytest.mark.parametrize("gpu_paddle", [False, True], ids=["cpu-paddle", "gpu-paddle"])
def test_run_installs_around_a_gpu_paddle(tmp_path, gpu_paddle):
    work, log, env = _fake_checkout(tmp_path, gpu_paddle)
    p = subprocess.run(["bash", str(work / "run"), "cli", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "resnet-rosetta list"
    first, second, third = log.read_text().splitlines()
    assert third.endswith("--no-deps paddleclas==2.6.0")
    wanted = "test,gpu" if gpu_paddle else "test"  # this machine has no NVIDIA device
    assert first.endswith(f"--no-deps -e .[{wanted}]")
    assert " torch" in second and " pytest<9.2,>=8" in second
    assert (" paddlepaddle>=3.0" in second) is not gpu_paddle
    again = subprocess.run(["bash", str(work / "run"), "cli", "list"], capture_output=True, text=True, env=env,
                           timeout=60)
    assert again.returncode == 0 and len(log.read_text().splitlines()) == 3  # installed once per pyproject + extras
