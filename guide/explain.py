"""`resnet-rosetta explain`'s one call: list the topics, print one, or measure and regenerate the guide."""
from __future__ import annotations

import os
import shutil

from resnet_rosetta.common.atomic import atomic_write_text
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec
from .figures import DEFAULT_FIGURES, load_figures
from .markdown import render_markdown
from .terminal import render_text
from .topics import TOPICS, get_topic

DEFAULT_ARCH = "resnet50"
PathLike = str | os.PathLike[str]


def explain(topic: str | None = None, *, arch: str | None = None, width: int | None = None,
            figures: PathLike = DEFAULT_FIGURES, measure: PathLike | None = None,
            markdown: PathLike | None = None) -> int:
    """Measure the figures into `measure`, write the Markdown guide to `markdown`, or print `topic`
    (the topic list without one) `width` columns wide (default: the terminal's); the exit status."""
    if topic is not None and (measure or markdown):
        raise UserError("give a TOPIC or --measure/--markdown, not both")
    if measure:
        from .measure import measure as measure_figures  # NumPy and the oracle: only when measuring

        measure_figures(measure)
        print(f"wrote {measure}")
    measured = load_figures(measure or figures)
    if markdown:
        if measured is None:
            raise UserError(f"no measured figures at {figures}; run `resnet-rosetta explain --measure "
                            f"{figures}` first")
        atomic_write_text(markdown, render_markdown(measured))
        print(f"wrote {markdown}")
    if measure or markdown:
        return 0
    if topic is None:
        print("topics (resnet-rosetta explain TOPIC):")
        for t in TOPICS:
            print(f"  {t.name:<16} {t.title}: {t.summary}")
        return 0
    chosen = get_topic(topic)
    if arch is not None and not chosen.per_block:
        raise UserError(f"--arch applies to the block topic only, not to {chosen.name}")
    columns = width or shutil.get_terminal_size((120, 40)).columns
    print(render_text(chosen, get_spec(arch or DEFAULT_ARCH), columns, measured), end="")
    return 0
