"""The measured figures the guide quotes (docs/differences.json, written by `explain --measure`)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from resnet_rosetta.common.errors import UserError
from .topics import Topic

Figures = dict[str, Any]
DEFAULT_FIGURES = Path(__file__).resolve().parent.parent / "docs" / "differences.json"
MEASURE_COMMAND = "resnet-rosetta explain --measure docs/differences.json"


def load_figures(path: str | os.PathLike[str]) -> Figures | None:
    """The measured figures written by `explain --measure`, or None if there are none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path}: not a JSON file of measured figures ({exc})") from None


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if 1e-2 <= abs(value) < 1e3 else f"{value:.1e}"
    return str(value)


def measured(topic: Topic, figures: Figures | None) -> tuple[list[str], list[list[str]]] | None:
    """(columns, formatted rows) measured for `topic`, if any."""
    table = (figures or {}).get("tables", {}).get(topic.name)
    if table is None:
        return None
    return table["columns"], [[format_value(v) for v in row] for row in table["rows"]]


def measured_on(figures: Figures) -> str:
    about = figures["about"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(about["versions"].items()))
    return (f"Measured {about['date']} with `{about['command']}` on {about['machine']} (1-minute load "
            f"average {about['load_average']} when it started), Python {about['python']}, {versions}. "
            f"Bench model: {about['bench']}.")
