"""Time, injected: every component takes a :class:`Clock` so tests can control it.

Inside fleet every instant is a timezone-aware UTC ``datetime``; naive datetimes are a bug.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
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


class FakeClock:
    """A clock that moves only when told to: rehearsals and tests of schedules and windows.

    ``sleep`` advances the time at once instead of waiting. ``tick`` is added after every
    ``now()`` read, so that work which journals events appears to take time. Thread-safe.
    """

    def __init__(self, start: datetime, *, tick: timedelta = timedelta(0)) -> None:
        if start.tzinfo is None:
            raise ValueError("naive datetime: a FakeClock starts at an aware instant")
        self._now = start.astimezone(UTC)
        self._tick = tick
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            at = self._now
            self._advance(self._tick)
            return at

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(0.0, seconds)))

    def advance(self, delta: timedelta) -> None:
        """Move the time forward by ``delta`` (never backwards)."""
        with self._lock:
            self._advance(delta)

    def set(self, at: datetime) -> None:
        """Move the time forward to ``at``; moving it back is refused (clocks here never do)."""
        with self._lock:
            target = at.astimezone(UTC) if at.tzinfo else None
            if target is None or target < self._now:
                raise ValueError(f"cannot set a FakeClock to {at!r}: naive or in the past")
            self._advance(target - self._now)

    def _advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("a FakeClock never goes back")
        self._now += delta
        self._elapsed += delta.total_seconds()
