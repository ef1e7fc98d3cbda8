"""PNG figures of training and evaluation (matplotlib, Agg backend), each written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from resnet_rosetta.common.atomic import atomic_path
from .datasets import Dataset


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (imported on first use: the CLI starts faster)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)


def plot_curves(runs: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Train loss, train accuracy and test accuracy per epoch, one line per framework."""
    fig, axes = _pyplot().subplots(1, 3, figsize=(14, 4.2))
    panels = [("train_loss", "train loss", 1.0), ("train_acc", "train accuracy (%)", 100.0),
              ("test_acc", "test accuracy (%)", 100.0)]
    styles = ["-o", "--s", ":^", "-.d"]
    for (key, label, scale), ax in zip(panels, axes):
        for (fw, r), style in zip(runs.items(), styles):
            ax.plot([h["epoch"] for h in r["history"]], [scale * h[key] for h in r["history"]], style,
                    label=fw, markersize=4, alpha=0.85)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(counts: np.ndarray, data: Dataset, title: str, path: Path) -> None:
    """The confusion matrix as an annotated heat map."""
    k = len(data.class_names)
    fig, ax = _pyplot().subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
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
    _save(fig, path)
