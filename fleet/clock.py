"""Time, injected: every component takes a :class:`Clock` so tests can control it.

Inside fleet every instant is a timezone-aware UTC ``datetime``; naive datetimes are a bug.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where components read the time and sleep."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


def utc_iso(at: datetime) -> str:
    """ISO-8601 text of an aware instant, in UTC, to the millisecond."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: fleet keeps every instant timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`utc_iso`; accepts any ISO-8601 text with an offset."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return at.astimezone(UTC)
