"""Bad training data as cases for tests/cli/test_bad_input_cases.py: IDX files with huge or zero
dimensions, and images with no variance; appended to `bad_cases.CASES`."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable

import numpy as np

from bad_cases import CASES, Case

IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def idx(arr: np.ndarray, dims: tuple[int, ...] | None = None) -> bytes:
    """IDX unsigned-byte bytes of `arr`; `dims` overrides what the header claims."""
    dims = arr.shape if dims is None else dims
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *dims) + arr.astype(np.uint8).tobytes()


def _mnist(folder: Path, images: Callable[[np.ndarray], np.ndarray] = lambda x: x,
           train_images: bytes | None = None) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 10)):
        x = images(rng.integers(0, 255, (n, 8, 8)).astype(np.uint8))
        y = (np.arange(n) % 10).astype(np.uint8)
        (folder / IDX_NAMES[f"{split}_images"]).write_bytes(idx(x) if split == "test" or train_images is None
                                                             else train_images)
        (folder / IDX_NAMES[f"{split}_labels"]).write_bytes(idx(y))


def _train_on(write: Callable[[Path], None], command: str = "train") -> Callable[[Path], tuple[list[str], Path | None]]:
    def build(folder: Path) -> tuple[list[str], Path | None]:
        data = folder / "data"
        data.mkdir()
        write(data)
        if command == "train":
            out = folder / "run.safetensors"
            return ["train", "--framework", "torch", "--width", "4", "--image-size", "8", "--epochs", "1",
                    "--dataset", "mnist", "--data-dir", str(data), "--out", str(out)], out
        from resnet_rosetta.common.canonical import random_weights, save_canonical
        from resnet_rosetta.common.spec import get_spec

        spec = get_spec("resnet18_small").replace(widths=(4, 8, 16, 32), in_channels=1, input_size=8)
        save_canonical(folder / "w.safetensors", random_weights(spec), spec)
        return ["evaluate", "--framework", "torch", "--weights", str(folder / "w.safetensors"), "--dataset", "mnist",
                "--data-dir", str(data), "--out", str(folder / "eval")], None
    return build


_HUGE = idx(np.zeros((2, 8, 8), np.uint8), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
CASES += [
    Case("idx-huge-dims", "training data", "an IDX header claiming 4294967295^3 images",
         _train_on(lambda d: _mnist(d, train_images=_HUGE)), "IDX header promises 4294967295x4294967295x4294967295"),
    Case("idx-zero-size-images", "training data", "IDX images of 0x0 pixels",
         _train_on(lambda d: _mnist(d, train_images=idx(np.zeros((20, 0, 0), np.uint8)))),
         "IDX header says images of 0x0 pixels; expected at least 1x1"),
    Case("idx-constant-images-train", "training data", "`train` on images that are all one value",
         _train_on(lambda d: _mnist(d, lambda x: np.full_like(x, 7))), "(zero variance): nothing to learn"),
    Case("idx-constant-images-evaluate", "training data", "`evaluate` on images that are all one value",
         _train_on(lambda d: _mnist(d, lambda x: np.full_like(x, 7)), "evaluate"), "(zero variance): nothing to learn"),
]
