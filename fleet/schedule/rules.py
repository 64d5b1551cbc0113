"""Window rules: weekly wall-clock ranges and cron starts with a duration."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from fleet.errors import UsageError
from fleet.schedule.periods import Period
from fleet.schedule.timeutil import (
    _DST_SLACK,
    check_cron,
    cron_starts,
    format_duration,
    parse_duration,
    resolve_local,
    wall_time,
)

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = tuple(n.lower() for n in calendar.day_name)


def _parse_clock(text: str, *, end: bool) -> tuple[time, int]:
    """``HH:MM`` as a time and a day carry (``24:00`` is allowed as an end: midnight, +1 day)."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if match:
        hour, minute = int(match[1]), int(match[2])
        if end and (hour, minute) == (24, 0):
            return time(0, 0), 1
        if hour < 24 and minute < 60:
            return time(hour, minute), 0
    raise UsageError(f"bad time {text!r}: expected HH:MM between 00:00 and 23:59")


def _parse_day(text: str) -> int:
    word = text.lower()
    for index, (short, full) in enumerate(zip(_DAY_NAMES, _FULL_DAY_NAMES, strict=True)):
        if word == short or (len(word) >= 3 and full.startswith(word)):
            return index
    raise UsageError(f"bad day {text!r}: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun")


def _parse_days(text: str) -> tuple[int, ...]:
    """``Sat``, ``Mon-Fri`` (ranges may wrap: ``Fri-Mon``), ``Sat,Sun``, ``daily`` or ``*``."""
    if text.lower() in ("daily", "*"):
        return tuple(range(7))
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        a = _parse_day(first)
        b = _parse_day(last) if dash else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return tuple(sorted(days))


_WEEKLY = re.compile(
    r"(?P<days>[A-Za-z*][A-Za-z,*-]*)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*"
    r"(?:(?P<endday>[A-Za-z]+)\s+)?(?P<end>\d{1,2}:\d{2})"
)


@dataclass(frozen=True)
class WeeklyRule:
    """Weekly wall-clock ranges: ``Sat 02:00-05:00``, ``Fri 23:00-Sat 02:00``,
    ``Mon-Fri 22:00-02:00`` (an end before the start is on the next day)."""

    days: tuple[int, ...]
    start: time
    end: time
    end_days: int  # days from a start day to its end day, 0..7

    @classmethod
    def parse(cls, text: str) -> WeeklyRule:
        match = _WEEKLY.fullmatch(text.strip())
        if not match:
            raise UsageError(
                f"bad weekly window {text!r}",
                hint="e.g. 'Sat 02:00-05:00', 'Fri 23:00-Sat 02:00' or 'Mon-Fri 22:00-02:00'",
            )
        days = _parse_days(match["days"])
        start, _ = _parse_clock(match["start"], end=False)
        end, end_carry = _parse_clock(match["end"], end=True)
        if match["endday"]:
            if len(days) != 1:
                raise UsageError(f"window {text!r}: an end day needs a single start day")
            end_days = (_parse_day(match["endday"]) - days[0]) % 7 + end_carry
            if end_days == 0 and end <= start:
                end_days = 7
        elif end == start and not end_carry:
            raise UsageError(
                f"window {text!r} starts and ends at the same time",
                hint="name the end day for a 24-hour window: 'Sat 02:00-Sun 02:00'",
            )
        else:
            end_days = end_carry if end_carry or end > start else 1
        return cls(days, start, end, end_days)

    def periods(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[Period]:
        """This rule's periods overlapping [start, end), from local dates (``timedelta`` days)."""
        first = wall_time(start, tz).date() - timedelta(days=self.end_days + 1)
        last = wall_time(end, tz).date() + timedelta(days=1)
        out: list[Period] = []
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = resolve_local(datetime.combine(day, self.start), tz)
            closes_on = day + timedelta(days=self.end_days)
            closes = resolve_local(datetime.combine(closes_on, self.end), tz)
            if opens < closes and closes > start and opens < end:
                out.append(Period(opens, closes))
        return out

    def __str__(self) -> str:
        names = ",".join(_DAY_NAMES[d].title() for d in self.days)
        tail = f"{self.end:%H:%M}"
        if self.end_days and len(self.days) == 1:
            tail = f"{_DAY_NAMES[(self.days[0] + self.end_days) % 7].title()} {tail}"
        return f"{names} {self.start:%H:%M}-{tail}"


@dataclass(frozen=True)
class CronRule:
    """A cron expression for the start (wall clock of the window's zone) and a duration."""

    expr: str
    duration: timedelta

    @classmethod
    def parse(cls, expr: str, duration: str | timedelta) -> CronRule:
        span = duration if isinstance(duration, timedelta) else parse_duration(duration)
        if span <= timedelta(0):
            raise UsageError(f"cron window {expr!r}: the duration must be positive")
        check_cron(expr)
        return cls(expr.strip(), span)

    def periods(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[Period]:
        out: list[Period] = []
        for opens in cron_starts(self.expr, tz, start - self.duration - _DST_SLACK):
            if opens >= end:
                break
            if opens + self.duration > start:
                out.append(Period(opens, opens + self.duration))
        return out

    def __str__(self) -> str:
        return f"cron {self.expr} {format_duration(self.duration)}"
