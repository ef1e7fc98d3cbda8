"""Deliberately wrong ports, shared by the tests that must catch them."""
from __future__ import annotations

from flax import linen


class SameConv(linen.Conv):
    """The classic porting mistake: 'SAME' padding, which pads (0, 1) where torch pads (1, 1)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", "SAME")
        super().__post_init__()
