"""`resnet-rosetta evaluate`: test accuracy and confusion matrix of canonical weights in any framework.

The images are resized to the checkpoint's input size (its spec) and standardised as in `train`.
Writes PREFIX.txt (accuracy and confusion matrix), PREFIX.png (the confusion matrix) and
PREFIX.logits.npy (test-set logits, rows in dataset order) so runs in different frameworks can be
compared prediction by prediction.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from resnet_rosetta.common.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from resnet_rosetta.common.canonical import check_weights, load_canonical
from resnet_rosetta.common.datasets import CLASS_NAMES, DATASETS, Dataset, load_dataset
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.common.training import CHECKPOINT_SUFFIX, accuracy, confusion_matrix, format_confusion, predict_all
from resnet_rosetta.frameworks import FRAMEWORKS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="accuracy and confusion matrix of canonical weights on a test set",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", required=True, choices=FRAMEWORKS)
    p.add_argument("--weights", required=True, type=Path, metavar="CKPT.safetensors", help="canonical weights")
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="default digits (embedded)")
    p.add_argument("--data-dir", type=Path, help="folder with the MNIST / Fashion-MNIST IDX files")
    p.add_argument("--arch", help="expected architecture; required only if the file carries no spec")
    p.add_argument("--image-size", type=int, help="input size, only for files without a spec "
                                                  "(default: train's default for the dataset)")
    p.add_argument("--out", type=Path, metavar="PREFIX",
                   help="output prefix (default: CKPT without .safetensors + .eval-<dataset>-<framework>)")
    return p


def run(args: argparse.Namespace) -> int:
    from resnet_rosetta import frameworks
    from .loop import IMAGE_SIZE

    weights, spec = load_canonical(args.weights)
    if args.dataset == "digits" and args.data_dir is not None:
        raise UserError("--data-dir is for mnist and fashion-mnist; digits is embedded")
    if spec is None and args.arch is None:
        raise UserError(f"{args.weights}: carries no spec in its header; pass --arch NAME")
    if spec is not None and args.arch is not None and args.arch != spec.name:
        raise UserError(f"{args.weights}: checkpoint is for {spec.name}, not --arch {args.arch}")
    if spec is not None and args.image_size is not None and args.image_size != spec.input_size:
        raise UserError(f"{args.weights}: checkpoint was trained on {spec.input_size} px images, "
                        f"not --image-size {args.image_size}")
    classes = len(CLASS_NAMES[args.dataset])
    if spec is not None and spec.num_classes != classes:
        raise UserError(f"{args.weights}: checkpoint classifies {spec.num_classes} classes; "
                        f"{args.dataset} has {classes}")
    size = spec.input_size if spec is not None else args.image_size or IMAGE_SIZE[args.dataset]
    data = load_dataset(args.dataset, size, args.data_dir)
    if spec is None:
        spec = get_spec(args.arch).replace(in_channels=data.in_channels, num_classes=classes, input_size=size)
    elif spec.in_channels != data.in_channels:
        raise UserError(f"{args.weights}: checkpoint expects {spec.in_channels} input channels; "
                        f"{args.dataset} has {data.in_channels}")
    check_weights(weights, spec, str(args.weights))

    adapter = frameworks.load(args.framework, "adapter").Adapter(spec, weights)
    logits = predict_all(lambda x: adapter.forward(x)["logits"], data.x_test)
    predictions = np.argmax(logits, axis=1)
    acc = accuracy(logits, data.y_test)
    counts = confusion_matrix(data.y_test, predictions, data.num_classes)

    prefix = args.out or args.weights.with_name(
        args.weights.name.removesuffix(CHECKPOINT_SUFFIX) + f".eval-{args.dataset}-{args.framework}")
    report = (f"{args.weights} ({spec.name}) evaluated in {args.framework} on {args.dataset} test "
              f"({len(data.y_test)} images, {data.image_size} px)\n"
              f"top-1 accuracy: {100 * acc:.2f}% ({int((predictions == data.y_test).sum())}/{len(data.y_test)})\n\n"
              f"confusion matrix (rows: true class, columns: predicted class)\n"
              f"{format_confusion(counts, data.class_names)}\n")
    atomic_write_text(f"{prefix}.txt", report)
    buffer = io.BytesIO()
    np.save(buffer, logits.astype(np.float32))
    atomic_write_bytes(f"{prefix}.logits.npy", buffer.getvalue())
    plot_confusion(counts, data, f"{args.framework}: {100 * acc:.2f}% top-1", Path(f"{prefix}.png"))
    print(report + f"wrote {prefix}.txt, {prefix}.png, {prefix}.logits.npy")
    return 0


def plot_confusion(counts: np.ndarray, data: Dataset, title: str, path: Path) -> None:
    """The confusion matrix as an annotated heat map, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(data.class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(k), data.class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), data.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{data.name} test, {title}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
