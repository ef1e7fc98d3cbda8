"""Evaluation of canonical weights in any framework: top-1 accuracy, confusion matrix (text and PNG)
and the test-set logits, so runs in different frameworks compare prediction by prediction."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common.atomic import atomic_write_bytes, atomic_write_text, check_writable
from resnet_rosetta.common.canonical import as_float32, check_weights, load_canonical
from .datasets import CLASS_NAMES, load_dataset
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from .checkpoint import CHECKPOINT_SUFFIX
from .config import IMAGE_SIZE
from .metrics import accuracy, confusion_matrix, format_confusion, predict_all
from .plots import plot_confusion


def evaluate(weights_path: Path, framework: str, *, dataset: str = "digits", data_dir: Path | None = None,
             arch: str | None = None, image_size: int | None = None, out: Path | None = None) -> int:
    """Evaluate `weights_path` in `framework` on the test split; writes PREFIX.txt, .png and .logits.npy.

    The images are resized to the checkpoint's input size (its spec; `arch` and `image_size` only
    for files without one) and standardised as in `train`. Returns the exit status."""
    prefix = out or weights_path.with_name(
        weights_path.name.removesuffix(CHECKPOINT_SUFFIX) + f".eval-{dataset}-{framework}")
    check_writable(f"{prefix}.txt")
    weights, spec = load_canonical(weights_path)
    if dataset == "digits" and data_dir is not None:
        raise UserError("--data-dir is for mnist and fashion-mnist; digits is embedded")
    if spec is None and arch is None:
        raise UserError(f"{weights_path}: carries no spec in its header; pass --arch NAME")
    if spec is not None and arch is not None and arch != spec.name:
        raise UserError(f"{weights_path}: checkpoint is for {spec.name}, not --arch {arch}")
    if spec is not None and image_size is not None and image_size != spec.input_size:
        raise UserError(f"{weights_path}: checkpoint was trained on {spec.input_size} px images, "
                        f"not --image-size {image_size}")
    classes = len(CLASS_NAMES[dataset])
    if spec is not None and spec.num_classes != classes:
        raise UserError(f"{weights_path}: checkpoint classifies {spec.num_classes} classes; "
                        f"{dataset} has {classes}")
    size = spec.input_size if spec is not None else image_size or IMAGE_SIZE[dataset]
    data = load_dataset(dataset, size, data_dir)
    if spec is None:
        spec = get_spec(arch).replace(in_channels=data.in_channels, num_classes=classes, input_size=size)
    elif spec.in_channels != data.in_channels:
        raise UserError(f"{weights_path}: checkpoint expects {spec.in_channels} input channels; "
                        f"{dataset} has {data.in_channels}")
    check_weights(weights, spec, str(weights_path))

    adapter = frameworks.load(framework, "adapter").Adapter(spec, as_float32(weights))
    logits = predict_all(lambda x: adapter.forward(x)["logits"], data.x_test)
    predictions = np.argmax(logits, axis=1)
    acc = accuracy(logits, data.y_test)
    counts = confusion_matrix(data.y_test, predictions, data.num_classes)

    report = (f"{weights_path} ({spec.name}) evaluated in {framework} on {dataset} test "
              f"({len(data.y_test)} images, {data.image_size} px)\n"
              f"top-1 accuracy: {100 * acc:.2f}% ({int((predictions == data.y_test).sum())}/{len(data.y_test)})\n\n"
              f"confusion matrix (rows: true class, columns: predicted class)\n"
              f"{format_confusion(counts, data.class_names)}\n")
    atomic_write_text(f"{prefix}.txt", report)
    buffer = io.BytesIO()
    np.save(buffer, logits.astype(np.float32))
    atomic_write_bytes(f"{prefix}.logits.npy", buffer.getvalue())
    plot_confusion(counts, data, f"{framework}: {100 * acc:.2f}% top-1", Path(f"{prefix}.png"))
    print(report + f"wrote {prefix}.txt, {prefix}.png, {prefix}.logits.npy")
    return 0
