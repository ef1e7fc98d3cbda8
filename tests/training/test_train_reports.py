"""What training and evaluation report, without the CLI: metrics, the confusion matrix as text, the
compare table, and the PNG figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnet_rosetta.training.datasets import load_dataset
from resnet_rosetta.training.compare import compare_table
from resnet_rosetta.training.metrics import accuracy, confusion_matrix, format_confusion, predict_all
from resnet_rosetta.training.plots import plot_confusion, plot_curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_predict_all_feeds_one_shape_and_keeps_the_order() -> None:
    shapes = []

    def predict(x: np.ndarray) -> np.ndarray:
        shapes.append(x.shape)
        return x.reshape(len(x), -1)[:, :2] * 2

    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    np.testing.assert_array_equal(predict_all(predict, x, batch_size=4), x[:, :2] * 2)
    assert shapes == [(4, 3)] * 3


def test_accuracy_and_confusion() -> None:
    labels = np.array([0, 1, 2, 2, 1])
    logits = np.eye(3)[[0, 2, 2, 2, 1]]
    assert accuracy(logits, labels) == pytest.approx(0.8) and accuracy(logits[:0], labels[:0]) == 0.0
    counts = confusion_matrix(labels, logits.argmax(1), 3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 2]])
    text = format_confusion(counts, ("zero", "one", "two")).splitlines()
    assert text[0].split() == ["0", "1", "2", "(predicted)"]
    assert [line.split() for line in text[1:]] == [["0", "zero", "1", "0", "0"], ["1", "one", "0", "1", "1"],
                                                   ["2", "two", "0", "0", "2"]]


def _runs() -> dict[str, dict]:
    def history(final: float) -> list[dict[str, float]]:
        return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": final - 0.1 / e, "test_acc": final - 0.2 / e,
                 "seconds": 1.5} for e in (1, 2)]
    return {"torch": {"history": history(0.9), "wall": 4.0, "cpu": 7.0},
            "flax": {"history": history(0.95), "wall": 5.0, "cpu": 9.0}}


def test_compare_table() -> None:
    lines = compare_table(_runs()).splitlines()
    assert lines[2] == "| torch | 2 | 0.5000 | 85.00% | 80.00% | 3.0 | 4.0 | 7.0 |"
    assert lines[3] == "| flax | 2 | 0.5000 | 90.00% | 85.00% | 3.0 | 5.0 | 9.0 |"
    assert lines[-1] == "final test accuracy spread (max - min): 5.00 percentage points"


def test_figures_are_png(tmp_path: Path) -> None:
    plot_curves(_runs(), tmp_path / "curves.png", title="t")
    data = load_dataset("digits", 8)
    plot_confusion(np.diag(np.bincount(data.y_test)), data, "t", tmp_path / "confusion.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]  # nothing half-written
    for name in ("curves.png", "confusion.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
