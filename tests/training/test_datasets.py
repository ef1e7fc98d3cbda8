"""Datasets: the embedded digits split, IDX reading and its failure modes, resizing, batch order."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.training import datasets
from resnet_rosetta.training.datasets import IDX_FILES, epoch_order, load_dataset, read_idx, resize
from resnet_rosetta.common.errors import UserError


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x00 0x00 0x08 ndim, big-endian int32 dims, data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def write_mnist(folder: Path, n_train: int = 48, n_test: int = 24, size: int = 10, gz: bool = False,
                seed: int = 0) -> Path:
    """Tiny MNIST-layout IDX files whose images encode their label (a bright bar at row = label),
    so even a tiny model can learn them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, int(label) * size // 10, :] = 255
        prefix = "t10k" if split == "test" else "train"
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


def test_digits_split_is_fixed_and_standardised() -> None:
    a = load_dataset("digits", 8)
    b = load_dataset("digits", 16)
    assert (len(a.y_train), len(a.y_test)) == (1201, 596)
    assert a.x_train.shape == (1201, 1, 8, 8) and b.x_test.shape == (596, 1, 16, 16)
    assert a.x_train.strides == (256, 256, 32, 4)  # ordinary strides, see datasets._standardise
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.y_test, b.y_test)  # same split at every size
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-4
    assert np.bincount(a.y_test).tolist() == [59, 60, 59, 61, 60, 60, 60, 59, 58, 60]  # every 3rd of each class


def test_resize_matches_torch_bilinear() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    for size in (5, 8, 16, 28):
        ref = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=(size, size), mode="bilinear",
                                              align_corners=False)[:, 0].numpy()
        np.testing.assert_allclose(resize(x, size), ref, atol=1e-6)


@pytest.mark.parametrize("layout", ["plain", "torchvision", "gzip"])
def test_idx_layouts(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    write_mnist(folder, gz=layout == "gzip")
    data = load_dataset("fashion-mnist", 8, tmp_path)
    assert data.x_train.shape == (48, 1, 8, 8) and len(data.y_test) == 24
    assert data.class_names[9] == "Ankle boot"
    raw = read_idx(datasets.find_idx_files("fashion-mnist", tmp_path)["train_labels"], 1)
    np.testing.assert_array_equal(data.y_train, raw)


def test_missing_folder_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does not exist.*train-images-idx3-ubyte.*MNIST/raw"):
        load_dataset("mnist", 8, tmp_path / "nowhere")
    with pytest.raises(UserError, match="pass --data-dir"):
        load_dataset("mnist", 8)
    write_mnist(tmp_path)
    (tmp_path / IDX_FILES["test_labels"]).unlink()
    with pytest.raises(UserError, match=rf"missing t10k-labels-idx1-ubyte \(or \.gz\) in {tmp_path}"):
        load_dataset("mnist", 8, tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x01\x02" + b[2:], "bad magic number"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "is not unsigned byte"),
    (lambda b: b[:3] + b"\x02" + b[4:], "says 2 dimensions, expected 3"),
    (lambda b: b[:-5], "but the file has"),
    (lambda b: b[:6], "header truncated"),
])
def test_corrupt_idx_header(tmp_path: Path, damage, message: str) -> None:
    write_mnist(tmp_path)
    path = tmp_path / IDX_FILES["train_images"]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=message):
        load_dataset("mnist", 8, tmp_path)


def test_image_label_count_mismatch_and_bad_labels(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    labels = tmp_path / IDX_FILES["test_labels"]
    labels.write_bytes(idx_bytes(np.zeros(23, np.uint8)))
    with pytest.raises(UserError, match="holds 24 images but t10k-labels-idx1-ubyte holds 23 labels"):
        load_dataset("mnist", 8, tmp_path)
    labels.write_bytes(idx_bytes(np.full(24, 10, np.uint8)))
    with pytest.raises(UserError, match="label 10 out of range"):
        load_dataset("mnist", 8, tmp_path)


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    a = epoch_order(3, 0, 100)
    np.testing.assert_array_equal(a, epoch_order(3, 0, 100))
    assert sorted(a.tolist()) == list(range(100))
    assert not np.array_equal(a, epoch_order(3, 1, 100)) and not np.array_equal(a, epoch_order(4, 0, 100))
    steps = datasets.batches(a, 32)
    assert [len(s) for s in steps] == [32, 32, 32]  # remainder of 4 dropped
