"""One package per framework, mirrored: `model.py` (the idiomatic network), `adapter.py` (the small
common surface: build from a spec + canonical weights, forward in eval or train mode with named
stage outputs, canonical weights back) and `files.py` (the framework's native checkpoint files).

Each package imports only its own framework, so each can run in its own process.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from resnet_rosetta.common.errors import UserError

FRAMEWORKS = ("torch", "paddle", "flax")


def load(name: str, part: str = "adapter") -> ModuleType:
    """Import `frameworks.<name>.<part>`; a clear error if the name or the framework is unknown."""
    if name not in FRAMEWORKS:
        raise UserError(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
    try:
        return importlib.import_module(f"{__name__}.{name}.{part}")
    except ImportError as exc:
        raise UserError(f"framework {name} is not installed or failed to import: {exc}") from None
