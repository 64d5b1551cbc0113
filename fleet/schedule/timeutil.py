"""Zones, wall-clock resolution, calendar arithmetic, durations and cron starts.

The rules (DST days, leap days) are those of :mod:`fleet.schedule`.
"""

from __future__ import annotations

import calendar
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fleet.clock import Clock, SystemClock
from fleet.errors import UsageError
from fleet.schedule.cron import parse_cron

#: The largest UTC offset change at a DST transition (a few zones shift by two hours).
_DST_SLACK = timedelta(hours=3)
#: How far ahead a window's next opening is looked for: a yearly window on Feb 29 may be eight
#: years away (2096 -> 2104).
NEXT_OPEN_HORIZON = timedelta(days=9 * 366)
#: An open period longer than this counts as "open with no end in sight".
OPEN_UNTIL_HORIZON = timedelta(days=400)
#: Upper bound of the cron starts one computation looks at (a guard against runaway loops).
MAX_CRON_STEPS = 200_000


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a :class:`UsageError` naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Paris or UTC"
        ) from exc


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime: fleet keeps every instant timezone-aware")
    return at


def wall_time(at: datetime, tz: ZoneInfo) -> datetime:
    """The (naive) reading of ``tz``'s wall clock at the instant ``at``."""
    return _aware(at).astimezone(tz).replace(tzinfo=None)


def resolve_local(wall: datetime, tz: ZoneInfo) -> datetime:
    """The earliest UTC instant at which ``tz``'s wall clock reads ``wall`` or later.

    An existing local time maps to its instant (a repeated one to its first occurrence); a local
    time skipped by a spring-forward jump maps to the instant of the jump.
    """
    if wall.tzinfo is not None:
        raise ValueError("resolve_local takes a naive wall-clock time")
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if wall_time(first, tz) == wall:
        return first
    return _jump_instant(wall, tz)


def _jump_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant of the gap holding ``wall``, by bisection to the microsecond.

    Both folds of a skipped time are valid instants, one on each side of the jump: the earlier
    one still has the old offset, the later one the new.
    """
    a = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)
    after = hi.astimezone(tz).utcoffset()
    for _ in range(64):
        if hi - lo <= timedelta(microseconds=1):
            break
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, on the same day of the month or the month's last day
    when it has no such day (Jan 31 + 1 month = Feb 28 or 29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def add_years(day: date, years: int) -> date:
    """``day`` moved by whole years: Feb 29 becomes Feb 28 in a common year, never an error."""
    return add_months(day, 12 * years)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """``90s``, ``30m``, ``3h``, ``1h30m``, ``2d``, ``1w``; a bare number is seconds."""
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    raw = text.strip().lower()
    try:
        if re.fullmatch(r"\d+(\.\d+)?", raw):
            return timedelta(seconds=float(raw))
        parts = _DURATION_PART.findall(raw)
        if parts and "".join(n + u for n, u in parts) == raw:
            return timedelta(seconds=sum(float(n) * units[u] for n, u in parts))
    except OverflowError:
        pass
    raise UsageError(f"{what} {text!r}: expected a duration like 90s, 30m, 3h, 1h30m, 2d, 1w")


def format_duration(span: timedelta) -> str:
    """Short human text of a duration: ``3h``, ``1h30m``, ``2d4h``, ``45s``."""
    seconds = round(span.total_seconds())
    if seconds <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out


def check_cron(expr: str) -> None:
    """Refuse an expression outside fleet's cron grammar (see :mod:`fleet.schedule.cron`), or
    one that never matches (``0 0 30 2 *``)."""
    start = datetime(2000, 1, 1)  # noqa: DTZ001 (a wall-clock time)
    if next(parse_cron(expr).walk(start), None) is None:
        raise UsageError(
            f"bad cron expression {expr!r}: it never matches a date", hint="check the day and month"
        )


def cron_starts(expr: str, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """UTC instants of ``expr`` in ``tz``'s wall clock, ascending, from about ``after`` on
    (callers filter the first few). Starts that resolve to one instant (several in a skipped
    hour) are given once."""
    last: datetime | None = None
    for count, wall in enumerate(parse_cron(expr).walk(wall_time(after, tz) - _DST_SLACK)):
        if count >= MAX_CRON_STEPS:
            raise UsageError(f"cron {expr!r}: more than {MAX_CRON_STEPS} starts in one computation")
        at = resolve_local(wall, tz)
        if at != last:
            last = at
            yield at


def _waiter(clock: Clock, event: threading.Event) -> Callable[[float], object]:
    """Real time: wait on ``event`` (a stop interrupts at once). A controllable clock: sleep on
    it, which moves its time."""
    return event.wait if isinstance(clock, SystemClock) else clock.sleep
