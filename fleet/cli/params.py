"""Parameter types of the command line: every number and duration is checked by click, before a
command does anything (no run record, no host, no API call), and its rule shows in ``--help``.

- :class:`Count`: a whole number within bounds (``--concurrency``: at least 1).
- :class:`Ratio`: a share between 0 and 1, or a percentage (``--max-failure-ratio 0.1`` or ``10%``).
- :class:`Duration`: ``90s``, ``30m``, ``3h``, ``1h30m``, ``2d``, ``1w`` or plain seconds, within
  bounds (the longest is 30 days: a wait beyond it is a typo, and beyond what a timer can hold).

Each refuses what Python's own parsers let through: ``nan``, ``inf``, ``1e3``, signs, ``0x10``,
``5_000``, empty text. A bad value is a usage error: one line naming the flag, exit 3.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click

from fleet.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    _IntType = click.ParamType[int]
    _FloatType = click.ParamType[float]
else:  # click's ParamType is generic for type checkers only (and only in recent clicks)
    _IntType = _FloatType = click.ParamType

#: The longest duration any flag takes, in seconds (30 days).
MAX_DURATION = 30 * 86400.0

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class Count(_IntType):
    """A whole number from ``minimum`` to ``maximum`` (no maximum when None)."""

    name = "integer"

    def __init__(self, minimum: int, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    @property
    def rule(self) -> str:
        if self.maximum is not None:
            return f"{self.minimum} to {self.maximum}"
        return "0 or more" if self.minimum == 0 else f"at least {self.minimum}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            self.fail(f"{value!r} is not a whole number ({self.rule})", param, ctx)
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            self.fail(f"{number} is out of range ({self.rule})", param, ctx)
        return number


class Ratio(_FloatType):
    """A share from 0 to 1: ``0.1`` or ``10%``."""

    name = "ratio"
    rule = "0 to 1, or 0% to 100%"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float | int) and not isinstance(value, bool):
            share = float(value)
        else:
            text = str(value).strip()
            percent = text.endswith("%")
            number = text[:-1].strip() if percent else text
            if not _DECIMAL.fullmatch(number):
                self.fail(f"{value!r} is not a share ({self.rule})", param, ctx)
            share = float(number) / (100.0 if percent else 1.0)
        if not math.isfinite(share) or not 0.0 <= share <= 1.0:
            self.fail(f"{value!r} is out of range ({self.rule})", param, ctx)
        return share


class Duration(_FloatType):
    """A duration in seconds (a float), from ``minimum`` (excluded when ``positive``) to
    ``maximum``."""

    name = "duration"

    def __init__(self, *, positive: bool = False, maximum: float = MAX_DURATION) -> None:
        self.positive = positive
        self.maximum = maximum

    @property
    def rule(self) -> str:
        low = "more than 0s" if self.positive else "0s"
        return f"90s, 30m, 1h30m, 2d...; {low} to {_short(self.maximum)}"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        seconds = self._seconds(value, param, ctx)
        too_short = seconds <= 0 if self.positive else seconds < 0
        if not math.isfinite(seconds) or too_short or seconds > self.maximum:
            self.fail(f"{value!r} is out of range ({self.rule})", param, ctx)
        return seconds

    def _seconds(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float | int) and not isinstance(value, bool):
            return float(value)
        from fleet.schedule.timeutil import parse_duration

        try:
            return parse_duration(str(value), "duration").total_seconds()
        except (UsageError, OverflowError):
            self.fail(f"{value!r} is not a duration ({self.rule})", param, ctx)


def _short(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def option(*decls: str, type: Count | Ratio | Duration, help: str, **kw: Any) -> Callable[..., Any]:
    """``click.option`` whose help ends with the type's rule (``--bake DURATION  Wait between
    batches (90s, 30m, 1h30m, 2d...; 0s to 30d).``)."""
    return click.option(*decls, type=type, help=f"{help} ({type.rule}).", **kw)


def seconds_text(seconds: float) -> str:
    """A duration as a flag value that :class:`Duration` reads back: ``300s``, ``1.5s``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
