"""Eval-mode predictions over a whole split, accuracy and the confusion matrix (counts and text)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def predict_all(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits for every row of `x`, in batches of exactly `batch_size` (the last one padded
    with zeros and cut back), so a jit-compiling framework compiles one shape only."""
    out = []
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size]
        pad = np.zeros((batch_size - len(chunk), *x.shape[1:]), dtype=x.dtype)
        out.append(predict(np.concatenate([chunk, pad]))[:len(chunk)])
    return np.concatenate(out)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1] (0 for an empty split)."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else 0.0


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def format_confusion(counts: np.ndarray, class_names: tuple[str, ...]) -> str:
    """A plain-text confusion matrix: rows are true classes, columns predicted (by index)."""
    width = max(5, len(str(counts.max())) + 1)
    name_w = max(len(n) for n in class_names) + 5
    lines = [" " * name_w + "".join(f"{j:>{width}}" for j in range(len(class_names))) + "   (predicted)"]
    for i, name in enumerate(class_names):
        lines.append(f"{i:>2} {name:<{name_w - 3}}" + "".join(f"{c:>{width}}" for c in counts[i]))
    return "\n".join(lines)
