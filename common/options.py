"""Numeric command-line options, checked where they enter: argparse `type=` callables that accept only
finite numbers in range (a NaN is never a valid number here) and raise a one-line UserError naming
the option, the range and what was given."""
from __future__ import annotations

import math
from typing import Callable

from .errors import UserError


def number(option: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """A float in [low, high] (ends open with `low_open` / `high_open`; None: unbounded), finite."""
    lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise UserError(f"{option}: expected a finite number in {lo}, {hi}, found {text!r}")
        return value
    return parse


def integer(option: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (None: unbounded)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{option}: expected an integer, found {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise UserError(f"{option}: expected an integer in [{low if low is not None else '-inf'}, "
                            f"{high if high is not None else 'inf'}], found {value}")
        return value
    return parse
