"""Image-classification data for `train` and `evaluate`: embedded digits, MNIST and Fashion-MNIST from IDX files.

- `digits`: scikit-learn's 8x8 handwritten digits (1,797 real images, shipped inside the package, so
  it runs anywhere without downloads). Fixed, stratified split without randomness: within each
  class, in file order, every third image (ranks 2, 5, 8, ...) is a test image, 596 in all; the
  other 1,201 train. The file is ordered by writer, so this spreads every writer over both splits
  (a head / tail split instead puts unseen writers in the test set), and a third for testing keeps
  one image at 0.17 percentage points, so runs compare on more than a handful of images.
  Pixel values 0..16 -> [0, 1].
- `mnist`, `fashion-mnist`: the standard IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
  `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each optionally `.gz`) in a folder the user
  names, either directly in it (classic tutorials) or in `<dir>/<MNIST|FashionMNIST>/raw/`
  (torchvision.datasets). Never downloaded. Pixel values 0..255 are scaled to [0, 1].

Images are resized to the model's input size with bilinear interpolation (half-pixel centres, as
`torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False)`), then standardised
with the mean and standard deviation of the training split. Arrays are NCHW float32, labels int64.
The order of training batches is a pure function of (seed, epoch): `epoch_order`.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_rosetta.common.errors import UserError

DATASETS = ("digits", "mnist", "fashion-mnist")
DIGITS_TEST_EVERY = 3  # every third image of each class is a test image
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CLASS_NAMES = {
    "digits": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
_IDX_UBYTE = 0x08


@dataclass(frozen=True)
class Dataset:
    """A train / test split, NCHW float32 images in the model's input size, int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # where the images came from, for logs and reports

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])


def load_dataset(name: str, image_size: int, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The named dataset, resized to `image_size` x `image_size` and standardised."""
    if name == "digits":
        x_train, y_train, x_test, y_test, source = _digits()
    elif name in TORCHVISION_FOLDER:
        if data_dir is None:
            raise UserError(f"dataset {name} is read from IDX files: pass --data-dir DIR "
                            f"(DIR holding {', '.join(IDX_FILES.values())}, each optionally .gz)")
        x_train, y_train, x_test, y_test, source = _idx_dataset(name, Path(data_dir))
    else:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if image_size < 1:
        raise UserError(f"image size must be positive, found {image_size}")
    x_train, x_test = resize(x_train, image_size), resize(x_test, image_size)
    mean, std = float(x_train.mean(dtype=np.float64)), float(x_train.std(dtype=np.float64))
    if not std > 0:
        raise UserError(f"{source}: every training image pixel is {mean:g} (zero variance): nothing to learn, "
                        "and standardising would divide by zero")
    return Dataset(name, _standardise(x_train, mean, std), y_train, _standardise(x_test, mean, std), y_test,
                   CLASS_NAMES[name], source)


def _standardise(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """NCHW float32 with ordinary strides (reshape, not `[:, None]`, whose channel stride is 0)."""
    return ((x - mean) / std).astype(np.float32).reshape(x.shape[0], 1, *x.shape[1:])


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits  # lazily: only this loader needs scikit-learn

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each image among those of its class
    for c in np.unique(labels):
        rank[labels == c] = np.arange(np.count_nonzero(labels == c))
    test = rank % DIGITS_TEST_EVERY == DIGITS_TEST_EVERY - 1
    return images[~test], labels[~test], images[test], labels[test], "scikit-learn load_digits (embedded)"


# ---------------------------------------------------------------- IDX files

def find_idx_files(name: str, data_dir: Path) -> dict[str, Path]:
    """The four IDX files of `name`, from `data_dir/` or `data_dir/<MNIST|FashionMNIST>/raw/`."""
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist; it should hold {_expected(name, data_dir)}")
    candidates = [data_dir / TORCHVISION_FOLDER[name] / "raw", data_dir]
    for folder in candidates:
        found = {role: _with_gz(folder / base) for role, base in IDX_FILES.items()}
        if all(found.values()):
            return {role: path for role, path in found.items() if path is not None}
    best = max(candidates, key=lambda f: sum(_with_gz(f / b) is not None for b in IDX_FILES.values()))
    missing = [base for base in IDX_FILES.values() if _with_gz(best / base) is None]
    raise UserError(f"{name}: missing {', '.join(missing)} (or .gz) in {best}; expected {_expected(name, data_dir)}")


def _expected(name: str, data_dir: Path) -> str:
    return (f"{', '.join(IDX_FILES.values())} (each optionally .gz) directly in {data_dir} "
            f"or in {data_dir / TORCHVISION_FOLDER[name] / 'raw'}")


def _with_gz(path: Path) -> Path | None:
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            return p
    return None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array (magic 0x00 0x00 0x08 ndim, big-endian int32 dims), validated."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    if data[2] != _IDX_UBYTE:
        raise UserError(f"{path}: IDX data type 0x{data[2]:02x} is not unsigned byte (0x08)")
    if data[3] != ndim:
        raise UserError(f"{path}: IDX header says {data[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: IDX header truncated ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if ndim == 3 and 0 in dims[1:]:
        raise UserError(f"{path}: IDX header says images of {dims[1]}x{dims[2]} pixels; expected at least 1x1")
    expected = header + math.prod(dims)  # Python integers: a huge header cannot overflow
    if len(data) != expected:
        raise UserError(f"{path}: IDX header promises {'x'.join(map(str, dims))} bytes of data "
                        f"({expected} bytes in all) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _idx_dataset(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    files = find_idx_files(name, data_dir)
    x_train, y_train = _idx_split(name, files["train_images"], files["train_labels"])
    x_test, y_test = _idx_split(name, files["test_images"], files["test_labels"])
    return x_train, y_train, x_test, y_test, str(files["train_images"].parent)


def _idx_split(name: str, image_file: Path, label_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] and int64 labels, checked against each other and the class count."""
    images, labels = read_idx(image_file, 3), read_idx(label_file, 1)
    if len(images) != len(labels):
        raise UserError(f"{name}: {image_file.name} holds {len(images)} images but "
                        f"{label_file.name} holds {len(labels)} labels")
    if len(images) == 0:
        raise UserError(f"{image_file}: holds no images")
    if labels.max() >= len(CLASS_NAMES[name]):
        raise UserError(f"{label_file}: label {labels.max()} out of range 0..{len(CLASS_NAMES[name]) - 1}")
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


# ---------------------------------------------------------------- resizing and order

def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear weights, half-pixel centres, edges clamped (align_corners=False)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in), dtype=np.float32)
    np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, H, W) images to (N, size, size); identity when the size already matches."""
    n, h, w = images.shape
    if (h, w) == (size, size):
        return images
    return _interp_matrix(h, size) @ images @ _interp_matrix(w, size).T


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of training samples in `epoch` (0-based): a pure function of (seed, epoch, n),
    so a resumed run sees exactly the batches an uninterrupted one would."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Full batches of `order`; the remainder is dropped (a batch of one has no batch statistics),
    and it changes every epoch, so every sample is used."""
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
