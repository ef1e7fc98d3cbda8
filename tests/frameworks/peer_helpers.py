"""What the peer tests (timm, Hugging Face, PaddleClas) share: non-trivial BN statistics, a seeded
batch, and `forward` in all three frameworks through the CLI, judged against the peer's own logits."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.tolerance import compare, tolerance
from resnet_rosetta.frameworks import FRAMEWORKS

SIZE, BATCH = 32, 2
CLI = [str(Path(sys.executable).with_name("resnet-rosetta"))]


def bn_statistics(names: Iterable[str], shape_of: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random values for every BN statistic and affine term (never the identity a fresh model has):
    mean and shift around 0, variance and scale around 1, keyed by the peer's own names."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("running_mean", "_mean", "bias"):
            out[name] = rng.uniform(-0.3, 0.3, shape_of[name]).astype(np.float32)
        elif leaf in ("running_var", "_variance", "weight"):
            out[name] = rng.uniform(0.5, 1.5, shape_of[name]).astype(np.float32)
    return out


def batch(tmp_path: Path, seed: int = 0) -> tuple[np.ndarray, Path]:
    x = np.random.default_rng(seed).normal(size=(BATCH, 3, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x, tmp_path / "x.npy"


def convert(src: Path, dst: Path, *, as_user: bool, says: str = "") -> None:
    """`resnet-rosetta convert SRC DST`, as a user runs it (a subprocess whose output must contain
    `says`) or in-process through the same entry point (faster: no second start of the frameworks)."""
    argv = ["convert", str(src), str(dst)]
    if as_user:
        done = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and says in done.stdout, done.stderr
    else:
        assert main(argv) == 0


def forward_everywhere(weights: Path, x_path: Path, expected: np.ndarray, tmp_path: Path) -> None:
    """`resnet-rosetta forward` in every framework gives the peer's logits within the pairwise eval tolerance."""
    for fw in FRAMEWORKS:
        out = tmp_path / f"logits_{fw}.npy"
        assert main(["forward", "--framework", fw, "--weights", str(weights), "--input", str(x_path),
                     "--output", str(out)]) == 0
        got = compare(np.load(out), expected, 0)
        assert got.max_rel < tolerance("eval", pairwise=True), (fw, got.max_rel)


@functools.cache
def paddleclas_resnet() -> object:
    """PaddleClas' own ResNet module (ppcls/arch/backbone/legendary_models/resnet.py) as its wheel ships
    it. The packages above it are entered without running their `__init__`s, which import every model
    and PaddleClas' application dependencies (OpenCV, faiss, visualdl; its numpy==1.24.4 pin is why it
    is installed without dependencies: common/install.py)."""
    import importlib
    import importlib.util
    import sys
    import types

    found = importlib.util.find_spec("paddleclas")
    if found is None or not found.submodule_search_locations:
        import pytest

        pytest.skip("paddleclas is not installed (./run installs it)")
    root = Path(list(found.submodule_search_locations)[0])
    for package in ("", "ppcls", "ppcls/utils", "ppcls/arch", "ppcls/arch/backbone", "ppcls/arch/backbone/base",
                    "ppcls/arch/backbone/base/dbb", "ppcls/arch/backbone/legendary_models"):
        name = ".".join(["paddleclas", *package.split("/")]) if package else "paddleclas"
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(root / package)]
            sys.modules[name] = module
    resnet = importlib.import_module("paddleclas.ppcls.arch.backbone.legendary_models.resnet")
    importlib.import_module("paddleclas.ppcls.utils.logger").init_logger()  # as PaddleClas' engine does first
    return resnet
