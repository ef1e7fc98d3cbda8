"""The `train` command's job: a fresh run, a resumed run (it may switch framework, since weights and
momentum buffers are both canonical) or a comparison of frameworks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from resnet_rosetta.common.errors import UserError
from .checkpoint import Resume, default_out, load_checkpoint
from .compare import run_compare
from .config import new_config, resumed_config
from .loop import train


def train_command(settings: Mapping[str, Any], *, compare: Sequence[str] | None = None, out: Path | None = None,
                  resume: Path | None = None) -> int:
    """Run `train` from the user's settings (`config.SETTINGS` names, None: not given); the exit status."""
    if compare:
        if resume:
            raise UserError("--resume continues one run; use it with --framework, not --compare")
        return run_compare(new_config(settings, compare[0]), compare, out)
    if resume:
        start = Resume(resume, *load_checkpoint(resume))
        train(resumed_config(settings, start.state.config, resume), out or resume, start)
    else:
        config = new_config(settings, settings["framework"])
        train(config, out or default_out(config, with_framework=True))
    return 0
