"""Maintenance windows, cron schedules and the scheduler loop.

Every instant inside fleet is timezone-aware UTC. Windows and schedules are written in the
wall-clock time of an IANA zone (``Europe/Paris``), computed there, and turned into UTC instants
by one rule, :func:`resolve_local`: *a local time is the earliest instant at which the zone's
wall clock reads that time or later*. What that means on the two DST days (Europe/Paris):

* Spring forward (2026-03-29, the clock jumps from 02:00 to 03:00; 02:00-03:00 never shows):
  a time in the skipped hour is the instant of the jump (03:00 CEST = 01:00 UTC). A window
  ``02:30-03:30`` opens at 03:00 and closes at 03:30 local: it is shorter that day. A window
  lying wholly in the skipped hour does not open that day. A cron start in the skipped hour
  fires at the jump, and several starts in it fire once.
* Fall back (2026-10-25, the clock goes from 03:00 back to 02:00; 02:00-03:00 shows twice):
  a repeated time is its first occurrence (CEST). A window ``02:30-03:30`` opens at 02:30 CEST
  (00:30 UTC) and closes the first time the clock reads 03:30 (03:30 CET = 02:30 UTC): it is
  an hour longer that day. A cron start at 02:30 fires once, at 00:30 UTC.

A cron window's ``duration`` is elapsed time from its start (``3h`` is three real hours, on DST
days too); a weekly range ends at its wall-clock end time.

Calendar arithmetic never builds a date by replacing its year, month or day: days are added with
``timedelta``, months and years with :func:`add_months`, which falls back to the month's last day
(2028-02-29 plus one year is 2029-02-28). The leap-day bug of the seed's post-mortem (valid-to =
"same date, year + 1" = the invalid 2013-02-29) cannot be written with these helpers.

Windows (allow and deny; deny wins) attach to the whole fleet, a label, a datacenter or a host
group. :class:`WindowGuard` keeps a rollout inside them; :class:`Scheduler` starts schedules'
rollouts when they are due, under a leader lease, recording each due time once in the store.
"""

from __future__ import annotations

import calendar
import fnmatch
import getpass
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from fleet.clock import Clock, SystemClock, utc_iso
from fleet.errors import FleetError, InputError, LeaseHeld, StoreError, UsageError
from fleet.store.base import Event, Lease, Owner, RunRecord, ScheduleRecord, Store

if TYPE_CHECKING:
    from fleet.executor import StopSignal
    from fleet.inventory import Host
    from fleet.journal import Journal
    from fleet.rollout import Rollout

#: The largest UTC offset change at a DST transition (a few zones shift by two hours).
_DST_SLACK = timedelta(hours=3)
#: How far ahead a window's next opening is looked for: a yearly window on Feb 29 may be eight
#: years away (2096 -> 2104).
NEXT_OPEN_HORIZON = timedelta(days=9 * 366)
#: An open period longer than this counts as "open with no end in sight".
OPEN_UNTIL_HORIZON = timedelta(days=400)
#: Upper bound of the cron starts one computation looks at (a guard against runaway loops).
MAX_CRON_STEPS = 200_000

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = tuple(n.lower() for n in calendar.day_name)


# ----------------------------------------------------------------------------- time arithmetic


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


# ------------------------------------------------------------------------------ periods


@dataclass(frozen=True, order=True)
class Period:
    """A half-open interval [start, end) of UTC instants."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def merge(periods: Iterable[Period]) -> list[Period]:
    """Sorted union: overlapping or touching periods become one."""
    out: list[Period] = []
    for p in sorted(periods):
        if out and p.start <= out[-1].end:
            if p.end > out[-1].end:
                out[-1] = Period(out[-1].start, p.end)
        else:
            out.append(p)
    return out


def subtract(keep: list[Period], cut: list[Period]) -> list[Period]:
    """``keep`` minus ``cut`` (both merged and sorted)."""
    out: list[Period] = []
    j = 0
    for p in keep:
        start = p.start
        while j < len(cut) and cut[j].end <= start:
            j += 1
        k = j
        while k < len(cut) and cut[k].start < p.end:
            if cut[k].start > start:
                out.append(Period(start, cut[k].start))
            start = max(start, cut[k].end)
            k += 1
        if start < p.end:
            out.append(Period(start, p.end))
    return out


def intersect(a: list[Period], b: list[Period]) -> list[Period]:
    """Instants in both ``a`` and ``b`` (both merged and sorted)."""
    out: list[Period] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if start < end:
            out.append(Period(start, end))
        if a[i].end < b[j].end:
            i += 1
        else:
            j += 1
    return out


def clip(periods: list[Period], start: datetime, end: datetime) -> list[Period]:
    return [
        Period(max(p.start, start), min(p.end, end))
        for p in periods
        if p.end > start and p.start < end
    ]


# -------------------------------------------------------------------------------- rules


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


def check_cron(expr: str) -> None:
    """Refuse an invalid cron expression, or one that never matches (``0 0 30 2 *``)."""
    try:
        it = croniter(expr.strip(), datetime(2000, 1, 1))  # noqa: DTZ001 (wall-clock time)
        it.get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        raise UsageError(
            f"bad cron expression {expr!r}: {exc}",
            hint="five fields: minute hour day month weekday",
        ) from exc


def cron_starts(expr: str, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """UTC instants of ``expr`` in ``tz``'s wall clock, ascending, from about ``after`` on
    (callers filter the first few). Starts that resolve to one instant (several in a skipped
    hour) are given once."""
    it = croniter(expr, wall_time(after, tz) - _DST_SLACK)
    last: datetime | None = None
    for _ in range(MAX_CRON_STEPS):
        try:
            wall = it.get_next(datetime)
        except CroniterBadDateError:
            return
        at = resolve_local(wall, tz)
        if at != last:
            last = at
            yield at
    raise UsageError(f"cron {expr!r}: more than {MAX_CRON_STEPS} starts in one computation")


# ------------------------------------------------------------------------------- scopes


@dataclass(frozen=True)
class Scope:
    """Which hosts a window applies to: ``fleet`` (all), ``label:k=v``, ``dc:NAME``,
    ``group:NAME`` (globs allowed in values, as in ``--limit``)."""

    kind: str = "fleet"
    key: str = ""
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        text = text.strip()
        if text in ("", "fleet", "all"):
            return cls()
        prefix, _, rest = text.partition(":")
        if prefix == "label" and rest:
            key, has_value, value = rest.partition("=")
            return cls("label", key, value if has_value else None)
        if prefix in ("dc", "group") and rest:
            return cls(prefix, rest)
        raise UsageError(
            f"bad window scope {text!r}", hint="fleet, label:KEY=VALUE, dc:NAME or group:NAME"
        )

    def matches(self, host: Host) -> bool:
        if self.kind == "label":
            value = host.labels.get(self.key)
            return value is not None and (
                self.value is None or fnmatch.fnmatchcase(value, self.value)
            )
        if self.kind == "dc":
            return fnmatch.fnmatchcase((host.datacenter or "").lower(), self.key.lower())
        if self.kind == "group":
            return any(fnmatch.fnmatchcase(g, self.key) for g in host.groups)
        return True

    def __str__(self) -> str:
        if self.kind == "label":
            return f"label:{self.key}" + (f"={self.value}" if self.value is not None else "")
        return "fleet" if self.kind == "fleet" else f"{self.kind}:{self.key}"


# ------------------------------------------------------------------------------ windows


@dataclass(frozen=True)
class Window:
    """An allow or deny window in one zone, for the hosts of its scope."""

    kind: str  # "allow" or "deny"
    rule: WeeklyRule | CronRule
    zone: str
    scope: Scope = field(default_factory=Scope)

    def periods(self, start: datetime, end: datetime) -> list[Period]:
        """Its periods overlapping [start, end), in UTC, sorted (unmerged, unclipped)."""
        return self.rule.periods(load_zone(self.zone), _aware(start), _aware(end))

    def __str__(self) -> str:
        text = f"{self.kind} {self.rule} {self.zone}"
        return text if self.scope.kind == "fleet" else f"{text} on {self.scope}"


def parse_window(text: str) -> Window:
    """A window from one line: ``[allow|deny] RULE ZONE [on SCOPE]``, where RULE is a weekly
    range (``Sat 02:00-05:00``) or ``cron M H DOM MON DOW DURATION``.

    Examples: ``Sat 02:00-05:00 Europe/Paris``, ``deny Fri 23:00-Sat 02:00 UTC on dc:gra3``,
    ``cron 0 2 * * 6 3h Europe/Paris on label:role=storage``.
    """
    tokens = text.split()
    kind = "allow"
    if tokens and tokens[0].lower() in ("allow", "deny"):
        kind = tokens.pop(0).lower()
    scope = Scope()
    if len(tokens) >= 2 and tokens[-2].lower() == "on":
        scope = Scope.parse(tokens[-1])
        tokens = tokens[:-2]
    if len(tokens) < 2 or ":" in tokens[-1]:
        raise UsageError(
            f"window {text!r}: give a rule and a time zone",
            hint="e.g. 'Sat 02:00-05:00 Europe/Paris' or 'cron 0 2 * * 6 3h UTC'",
        )
    zone = tokens.pop()
    load_zone(zone)
    if tokens[0].lower() == "cron":
        fields = tokens[1:]
        if len(fields) < 2:
            raise UsageError(f"window {text!r}: expected 'cron M H DOM MON DOW DURATION'")
        rule: WeeklyRule | CronRule = CronRule.parse(" ".join(fields[:-1]), fields[-1])
    else:
        rule = WeeklyRule.parse(" ".join(tokens))
    return Window(kind, rule, zone, scope)


def _entry_window(entry: Any, where: str) -> Window:
    """One entry of a windows file: ``{allow|deny: RULE, tz: ZONE, scope: SCOPE}``; RULE is a
    weekly range or ``{cron: EXPR, duration: 3h}``."""
    if not isinstance(entry, Mapping):
        raise UsageError("expected a mapping with allow or deny, tz and optional scope")
    unknown = set(entry) - {"allow", "deny", "tz", "scope"}
    if unknown:
        raise UsageError(f"unknown keys {', '.join(sorted(map(str, unknown)))}")
    kinds = [k for k in ("allow", "deny") if k in entry]
    if len(kinds) != 1 or not isinstance(entry.get("tz"), str):
        raise UsageError("give exactly one of allow or deny, and tz (an IANA zone)")
    zone, body = str(entry["tz"]), entry[kinds[0]]
    load_zone(zone)
    if isinstance(body, Mapping) and set(body) == {"cron", "duration"}:
        rule: WeeklyRule | CronRule = CronRule.parse(str(body["cron"]), str(body["duration"]))
    elif isinstance(body, str):
        rule = WeeklyRule.parse(body)
    else:
        raise UsageError(f"{kinds[0]}: a weekly range or {{cron: EXPR, duration: 3h}}")
    return Window(kinds[0], rule, zone, Scope.parse(str(entry.get("scope", "fleet"))))


def load_windows(path: Path) -> list[Window]:
    """Windows from a YAML file: a list of entries, or a mapping with a ``windows`` list::

    windows:
      - allow: Sat 02:00-05:00
        tz: Europe/Paris
        scope: label:role=storage
      - deny: {cron: "0 0 24 12 *", duration: 48h}
        tz: Europe/Paris
    """
    from fleet import yamlsrc

    data, lines = yamlsrc.load(path)
    entries = data.get("windows") if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise InputError("expected a list of windows (or windows: [...])", path=str(path))
    out = []
    for index, entry in enumerate(entries):
        key_path = ("windows", index) if isinstance(data, Mapping) else (index,)
        try:
            out.append(_entry_window(entry, f"{path}[{index}]"))
        except UsageError as exc:
            line = yamlsrc.line_of(lines, key_path)
            raise InputError(
                exc.message, path=str(path), line=line, key=f"windows[{index}]", hint=exc.hint
            ) from exc
    return out


# --------------------------------------------------------------------------- timetables


class Timetable(ABC):
    """When something may start. Subclasses give :meth:`open_periods`; the queries are pure."""

    @abstractmethod
    def open_periods(self, start: datetime, end: datetime) -> list[Period]:
        """The open periods within [start, end): sorted, merged, clipped to the range."""

    def periods_from(self, at: datetime, horizon: timedelta) -> Iterator[Period]:
        """Open periods from ``at`` to ``at + horizon``, merged across the chunks computed
        (a period cut by the horizon ends exactly at ``at + horizon``)."""
        end_all = _aware(at) + horizon
        lo, chunk = at, timedelta(days=8)
        pending: Period | None = None
        while lo < end_all:
            hi = min(lo + chunk, end_all)
            for p in self.open_periods(lo, hi):
                if pending and p.start <= pending.end:
                    pending = Period(pending.start, max(pending.end, p.end))
                    continue
                if pending:
                    yield pending
                pending = p
            if pending and pending.end < hi:
                yield pending
                pending = None
            lo, chunk = hi, chunk * 4
        if pending:
            yield pending

    def is_open(self, at: datetime) -> bool:
        """Whether something may start at ``at``."""
        return bool(self.open_periods(_aware(at), at + timedelta(microseconds=1)))

    def next_open(self, at: datetime, horizon: timedelta = NEXT_OPEN_HORIZON) -> datetime | None:
        """``at`` when open, else the next instant it opens; None if not within ``horizon``."""
        return next((p.start for p in self.periods_from(at, horizon)), None)

    def open_until(self, at: datetime, horizon: timedelta = OPEN_UNTIL_HORIZON) -> datetime | None:
        """The end of the open period holding ``at``, deny windows considered: ``at`` itself
        when closed, None when it stays open past ``horizon``."""
        for p in self.periods_from(at, horizon):
            if p.start > at:
                return at
            return None if p.end >= at + horizon else p.end
        return at


class WindowSet(Timetable):
    """Allow windows (any of them; none at all means always) minus deny windows (deny wins)."""

    def __init__(self, windows: Iterable[Window]) -> None:
        self.windows = tuple(windows)
        self.allow = [w for w in self.windows if w.kind == "allow"]
        self.deny = [w for w in self.windows if w.kind == "deny"]

    def open_periods(self, start: datetime, end: datetime) -> list[Period]:
        if start >= end:
            return []
        allowed = [Period(start, end)]
        if self.allow:
            allowed = merge(p for w in self.allow for p in w.periods(start, end))
        denied = merge(p for w in self.deny for p in w.periods(start, end))
        return clip(subtract(allowed, denied), start, end)


class AllOf(Timetable):
    """Open when every part is open (a batch whose hosts fall under different windows)."""

    def __init__(self, parts: Sequence[Timetable]) -> None:
        self.parts = tuple(parts)

    def open_periods(self, start: datetime, end: datetime) -> list[Period]:
        if start >= end:
            return []
        if not self.parts:
            return [Period(start, end)]
        return reduce(intersect, (p.open_periods(start, end) for p in self.parts))


def timetable_for(windows: Sequence[Window], hosts: Sequence[Host]) -> Timetable:
    """When all of ``hosts`` may start: each host under the windows whose scope holds it."""
    groups = {tuple(w for w in windows if w.scope.matches(h)): None for h in hosts}
    if not hosts:
        groups = {tuple(w for w in windows if w.scope.kind == "fleet"): None}
    parts: list[Timetable] = [WindowSet(ws) for ws in groups if ws]
    return parts[0] if len(parts) == 1 else AllOf(parts)


@dataclass(frozen=True)
class StartPlan:
    """When work estimated to take ``need`` may start: ``start`` (None: never within the
    horizon), the end of that window (None: open-ended) and why it is not now."""

    start: datetime | None
    until: datetime | None
    reason: str


def plan_start(
    table: Timetable, now: datetime, need: timedelta, *, max_candidates: int = 1000
) -> StartPlan:
    """The first instant from ``now`` on at which ``table`` is open and stays open for
    ``need``; when no window is that long, the next opening (the best that can be done)."""
    first: StartPlan | None = None
    horizon_end = now + NEXT_OPEN_HORIZON
    for count, p in enumerate(table.periods_from(now, NEXT_OPEN_HORIZON)):
        start = max(p.start, now)
        until = None if p.end >= horizon_end else p.end
        if first is None:
            first = StartPlan(start, until, "")
        if until is None or until - start >= need:
            return StartPlan(start, until, _why(first, start, now, need))
        if count >= max_candidates:
            break
    if first is None:
        return StartPlan(None, None, f"no window opens within {format_duration(NEXT_OPEN_HORIZON)}")
    reason = f"no window is long enough for the estimated {format_duration(need)}"
    return StartPlan(first.start, first.until, reason + ": starting at the next opening")


def _why(first: StartPlan, start: datetime, now: datetime, need: timedelta) -> str:
    if start == now:
        return ""
    if first.start == now and first.until is not None:
        left = format_duration(first.until - now)
        return f"the estimated {format_duration(need)} does not fit in the {left} left"
    return "outside the maintenance window"


# ---------------------------------------------------------------------------- estimates


def host_durations(events: Iterable[Event]) -> list[float]:
    """Seconds from ``host.start`` to a successful ``host.end``, per host run, in a journal."""
    started: dict[str, datetime] = {}
    out: list[float] = []
    for e in events:
        if e.host is None:
            continue
        if e.kind == "host.start":
            started[e.host] = e.at
        elif e.kind == "host.end" and e.host in started:
            begun = started.pop(e.host)
            if e.outcome == "ok":
                out.append((e.at - begun).total_seconds())
    return out


class DurationEstimate:
    """Mean host duration from this run's journal and the latest earlier runs of the plan."""

    def __init__(self, store: Store, run: RunRecord, *, history_runs: int = 5) -> None:
        self.store = store
        self.run = run
        earlier = [
            r for r in store.list_runs(limit=100) if r.plan_name == run.plan_name and r.id != run.id
        ][:history_runs]
        self._history = [d for r in earlier for d in host_durations(store.events(r.id))]

    def host_seconds(self) -> float | None:
        samples = self._history + host_durations(self.store.events(self.run.id))
        return sum(samples) / len(samples) if samples else None

    def batch(self, size: int, concurrency: int) -> timedelta:
        """Mean host duration x waves (batch size / concurrency, rounded up); 0 if unknown."""
        mean = self.host_seconds()
        if mean is None or size <= 0:
            return timedelta(0)
        return timedelta(seconds=mean * math.ceil(size / max(concurrency, 1)))


# ------------------------------------------------------------------------- window guard


def _waiter(clock: Clock, event: threading.Event) -> Callable[[float], object]:
    """Real time: wait on ``event`` (a stop interrupts at once). A controllable clock: sleep on
    it, which moves its time."""
    return event.wait if isinstance(clock, SystemClock) else clock.sleep


class WindowGuard:
    """Keeps a rollout inside its maintenance windows (``Rollout.before_batch``/``before_host``).

    Before a batch (or host, with ``--window-hosts``) it estimates the time needed from past
    host durations and starts only when the window is open and that time fits in what is left
    of it; otherwise it journals ``window.wait`` and waits for the next window long enough. A
    window closing never interrupts a host in flight. The run's stop signal and the global halt
    end the wait (checked every ``poll`` seconds; a stop interrupts a real-time wait at once).
    """

    def __init__(
        self,
        windows: Sequence[Window],
        *,
        store: Store,
        journal: Journal,
        run: RunRecord,
        stop: StopSignal,
        concurrency: int,
        clock: Clock | None = None,
        wait: Callable[[float], object] | None = None,
        poll: float = 5.0,
        max_wait: timedelta = timedelta(days=35),
    ) -> None:
        self.windows = tuple(windows)
        self.store, self.journal, self.run, self.stop = store, journal, run, stop
        self.concurrency = concurrency
        self.clock: Clock = clock or SystemClock()
        self._wait = wait or _waiter(self.clock, stop.soft)
        self.poll = max(poll, 0.01)
        self.max_wait = max_wait
        self.estimate = DurationEstimate(store, run)

    def before_batch(self, index: int, batch: list[Host]) -> bool:
        need = self.estimate.batch(len(batch), self.concurrency)
        table = timetable_for(self.windows, batch)
        return self._await(table, need, f"batch {index}", None, {"batch": index})

    def before_host(self, host: Host) -> bool:
        need = self.estimate.batch(1, 1)
        table = timetable_for(self.windows, [host])
        return self._await(table, need, host.name, host.name, {})

    def _await(
        self, table: Timetable, need: timedelta, what: str, host: str | None, data: dict[str, Any]
    ) -> bool:
        deadline = self.clock.now() + self.max_wait
        data = {**data, "estimate_s": round(need.total_seconds(), 3)}
        for _ in range(100):  # each round waits for one opening; one or two are the rule
            if self._stopped():
                return False
            now = self.clock.now()
            plan = plan_start(table, now, need)
            if plan.start is None or plan.start > deadline:
                self.stop.request(f"{what}: no maintenance window before {utc_iso(deadline)}")
                return False
            if plan.start <= now:
                until = utc_iso(plan.until) if plan.until else None
                self.journal.emit("window.open", host=host, data={**data, "until": until})
                return True
            text = f"{what} waits until {utc_iso(plan.start)}: {plan.reason}"
            self.journal.emit(
                "window.wait",
                host=host,
                outcome="wait",
                excerpt=text,
                data={**data, "until": utc_iso(plan.start), "reason": plan.reason},
            )
            if not self._sleep_until(plan.start):
                return False
        return False

    def _sleep_until(self, target: datetime) -> bool:
        for _ in range(math.ceil(self.max_wait.total_seconds() / self.poll) + 2):
            if self._stopped():
                return False
            left = (target - self.clock.now()).total_seconds()
            if left <= 0:
                return True
            self._wait(min(left, self.poll))
        return False

    def _stopped(self) -> bool:
        if self.stop.soft.is_set():
            return True
        halt = self.store.halt_state()
        if halt is not None:
            self.stop.request(f"global halt by {halt.who}: {halt.reason}")
            return True
        return False


def attach_windows(
    rollout: Rollout, windows: Sequence[Window], *, hosts: bool = False, **options: Any
) -> WindowGuard:
    """Put ``rollout`` under ``windows``: batches (and hosts, if ``hosts``) wait for them."""
    guard = WindowGuard(
        windows,
        store=rollout.svc.store,
        journal=rollout.journal,
        run=rollout.run,
        stop=rollout.svc.stop,
        concurrency=rollout.options.concurrency,
        clock=rollout.clock,
        **options,
    )
    rollout.before_batch = guard.before_batch
    if hosts:
        rollout.before_host = guard.before_host
    return guard


def window_hooks(
    specs: Sequence[str], files: Sequence[str | Path], hosts: bool
) -> Callable[[Rollout], None] | None:
    """Parse ``--window`` specs and ``--windows`` files now (bad input is refused before any
    run exists); returns what puts a rollout under them, or None without windows."""
    windows = [parse_window(s) for s in specs]
    windows += [w for f in files for w in load_windows(Path(f))]
    if not windows:
        if hosts:
            raise UsageError("--window-hosts needs --window or --windows")
        return None

    def attach(rollout: Rollout) -> None:
        attach_windows(rollout, windows, hosts=hosts)

    return attach


# ------------------------------------------------------------------------ schedule dues


def cron_dues(
    expr: str, zone: str, after: datetime, until: datetime, *, limit: int = MAX_CRON_STEPS
) -> Iterator[datetime]:
    """Due instants of a schedule in (after, until], ascending (at most ``limit``)."""
    count = 0
    for at in cron_starts(expr, load_zone(zone), after):
        if at > until or count >= limit:
            return
        if at > after:
            count += 1
            yield at


def next_due(expr: str, zone: str, after: datetime) -> datetime | None:
    """The first due instant strictly after ``after``."""
    return next(cron_dues(expr, zone, after, after + NEXT_OPEN_HORIZON), None)


def last_due(expr: str, zone: str, until: datetime) -> datetime | None:
    """The latest due instant at or before ``until``."""
    tz = load_zone(zone)
    it = croniter(expr, wall_time(until, tz) + _DST_SLACK)
    for _ in range(MAX_CRON_STEPS):
        try:
            at = resolve_local(it.get_prev(datetime), tz)
        except CroniterBadDateError:
            return None
        if at <= until:
            return at
    return None


@dataclass(frozen=True)
class Decision:
    """What a schedule needs now: ``fire`` or ``skip`` the due time ``due``, or ``none``."""

    action: str
    due: datetime | None = None
    reason: str = ""


def decide(schedule: ScheduleRecord, now: datetime, grace: timedelta) -> Decision:
    """Pure: the due time to act on at ``now``, and how (see the missed-run policy).

    The latest due time after the schedule's anchor (its last recorded due time, creation or
    resume) is run if it is at most ``grace`` old. Older, it was missed (no scheduler ran):
    policy ``once`` runs it once now, ``skip`` records it as skipped. Earlier missed slots are
    never run on their own: at most one rollout per decision.
    """
    anchors = [a for a in (schedule.since or schedule.created_at, schedule.last_due) if a]
    anchor = max(anchors) if anchors else now
    latest = last_due(schedule.cron, schedule.tz, now)
    if latest is None or latest <= anchor:
        return Decision("none")
    if schedule.expires_at is not None and latest >= schedule.expires_at:
        return Decision("none", latest, "expired")
    earlier = sum(1 for _ in cron_dues(schedule.cron, schedule.tz, anchor, latest, limit=1000)) - 1
    if now - latest <= grace:
        note = f"; {earlier} earlier slot(s) missed" if earlier > 0 else ""
        return Decision("fire", latest, f"due at {utc_iso(latest)}{note}")
    missed = f"{earlier + 1} slot(s) missed while no scheduler ran (last {utc_iso(latest)})"
    if schedule.missed == "once":
        return Decision("fire", latest, f"{missed}; policy once: one rollout now")
    return Decision("skip", latest, f"{missed}; policy skip: not run")


def expiry_after(start: datetime, zone: str, text: str) -> datetime:
    """``start`` plus ``text`` (``1y``, ``6mo``, ``2w``, ``30d``, ``12h``), calendar-wise in
    ``zone`` for months and years: the same local time on the same day of the month, or the
    month's last day (a schedule added on 2028-02-29 for ``1y`` ends on 2029-02-28)."""
    match = re.fullmatch(r"(\d+)(y|mo)", text.strip().lower())
    if not match:
        return start + parse_duration(text, "--for")
    months = int(match[1]) * (12 if match[2] == "y" else 1)
    tz = load_zone(zone)
    local = wall_time(start, tz)
    day = add_months(local.date(), months)
    return resolve_local(datetime.combine(day, local.time()), tz)


# ---------------------------------------------------------------------------- scheduler

#: The pseudo-host whose lease makes one scheduler the leader.
LEADER_LEASE = "scheduler:leader"


@dataclass(frozen=True)
class Launch:
    """A launched rollout: its run id once seen in the store, its process, and a note."""

    ok: bool
    run_id: str | None = None
    pid: int | None = None
    detail: str = ""


class Launcher(Protocol):
    """Starts a schedule's rollout for one due time."""

    def launch(self, schedule: ScheduleRecord, due: datetime) -> Launch: ...


@dataclass(frozen=True)
class FireResult:
    """What one tick did with one schedule: started, skipped, failed, taken (another scheduler
    recorded that due time first) or halted."""

    schedule: str
    due: datetime
    action: str
    run_id: str | None = None
    detail: str = ""


def scheduler_owner() -> Owner:
    """This scheduler as a lease owner; the random tag tells two schedulers of one process
    apart (equal owners would share a lease)."""
    tag = f"scheduler-{secrets.token_hex(3)}"
    return Owner(getpass.getuser(), socket.gethostname(), os.getpid(), tag)


class Scheduler:
    """Starts due rollouts of the schedules in the store.

    Only the holder of the ``scheduler:leader`` lease acts (renewed every tick, taken over when
    it expires), and each (schedule, due time) is recorded once in the store before anything is
    launched, so two schedulers never both start one due time, even across a leader change.
    The global halt stops it from starting anything (due times passed during a halt then follow
    the missed-run policy). ``clock`` is injectable: the due logic runs on it.
    """

    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        *,
        clock: Clock | None = None,
        grace: timedelta = timedelta(minutes=5),
        lease_ttl: float = 60.0,
        owner: Owner | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.clock: Clock = clock or SystemClock()
        self.grace = grace
        self.lease_ttl = lease_ttl
        self.owner = owner or scheduler_owner()
        self._log = log or (lambda _: None)
        self._lease: Lease | None = None
        self._said: set[str] = set()

    @property
    def leading(self) -> bool:
        return self._lease is not None

    def tick(self) -> list[FireResult]:
        """One pass: lead (or not), then act on every due schedule."""
        if not self._lead():
            return []
        now = self.clock.now()
        results = []
        for schedule in self.store.list_schedules():
            if schedule.paused:
                continue
            try:
                decision = decide(schedule, now, self.grace)
            except FleetError as exc:
                self._once(f"{schedule.name}: {exc.message}")
                continue
            if decision.action == "none" or decision.due is None:
                continue
            halt = self.store.halt_state()
            if halt is not None:
                self._once(
                    f"global halt by {halt.who} ({halt.reason}): {schedule.name} not started"
                )
                results.append(FireResult(schedule.name, decision.due, "halted", None, halt.reason))
                continue
            results.append(self._act(schedule, decision.due, decision))
        return results

    def _act(self, schedule: ScheduleRecord, due: datetime, decision: Decision) -> FireResult:
        name, by = schedule.name, str(self.owner)
        outcome = "skipped" if decision.action == "skip" else "starting"
        if not self.store.record_schedule_fire(
            name, due, None, outcome=outcome, by=by, detail=decision.reason
        ):
            return FireResult(name, due, "taken", None, "recorded by another scheduler")
        if decision.action == "skip":
            self._log(f"{name}: {decision.reason}")
            return FireResult(name, due, "skipped", None, decision.reason)
        try:
            launch = self.launcher.launch(schedule, due)
        except (FleetError, OSError) as exc:
            launch = Launch(False, detail=f"cannot launch: {exc}")
        detail = "; ".join(x for x in (decision.reason, launch.detail) if x)
        final = "started" if launch.ok else "failed"
        self.store.update_schedule_fire(
            name, due, outcome=final, run_id=launch.run_id, detail=detail
        )
        self._log(f"{name}: {final} run {launch.run_id or '?'} for {utc_iso(due)}: {detail}")
        return FireResult(name, due, final, launch.run_id, detail)

    def _lead(self) -> bool:
        """Renew our leader lease, or try to take it; False when another scheduler holds it."""
        if self._lease is not None:
            try:
                self._lease = self.store.renew_lease(self._lease, self.lease_ttl)
                return True
            except StoreError as exc:  # LeaseHeld included: expired and taken over
                self._lease = None
                self._log(f"lost the scheduler lead: {exc.message}")
        try:
            self._lease = self.store.acquire_lease(LEADER_LEASE, self.owner, self.lease_ttl)
        except LeaseHeld as exc:
            self._once(f"not leading: {exc.message}")
            return False
        self._said.clear()
        self._log(f"leading as {self.owner}")
        return True

    def _once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self._log(text)

    def run(
        self,
        *,
        poll: float = 30.0,
        once: bool = False,
        stop: threading.Event | None = None,
        max_ticks: int | None = None,
    ) -> None:
        """Tick every ``poll`` seconds until ``stop`` is set (or once, or ``max_ticks``)."""
        stop = stop or threading.Event()
        wait = _waiter(self.clock, stop)
        ticks = 0
        try:
            while not stop.is_set():
                self.tick()
                reap = getattr(self.launcher, "reap", None)
                if callable(reap):
                    reap()
                ticks += 1
                if once or (max_ticks is not None and ticks >= max_ticks):
                    return
                wait(poll)
        finally:
            self.close()

    def close(self) -> None:
        """Give the lead up, so that another scheduler takes over without waiting."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            try:
                self.store.release_lease(lease)
            except StoreError as exc:
                self._log(f"cannot release the scheduler lead: {exc.message}")


class SubprocessLauncher:
    """Starts each due rollout as its own ``python -m fleet ... rollout PLAN ARGS`` process.

    A process rather than a thread: a rollout may wait days for its window, handles Ctrl-C
    itself and must outlive a scheduler restart; as a process it is an ordinary run (``fleet
    status`` shows its pid, ``fleet resume`` takes it over if it dies) and a crash of one run
    cannot take the scheduler down. Its output goes to ``log_dir``. The run id is read back from
    the store (the run whose owner is the new process).
    """

    def __init__(
        self,
        store: Store,
        *,
        log_dir: Path,
        global_args: Sequence[str] = (),
        clock: Clock | None = None,
        link_timeout: float = 30.0,
        python: str = sys.executable,
    ) -> None:
        self.store = store
        self.log_dir = log_dir
        self.global_args = tuple(global_args)
        self.clock: Clock = clock or SystemClock()
        self.link_timeout = link_timeout
        self.python = python
        self.children: list[subprocess.Popen[bytes]] = []

    def command(self, schedule: ScheduleRecord) -> list[str]:
        return [self.python, "-m", "fleet", *self.global_args, "rollout", schedule.plan]

    def launch(self, schedule: ScheduleRecord, due: datetime) -> Launch:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{schedule.name}-{due:%Y%m%dT%H%M%SZ}.log"
        env = {**os.environ, "FLEET_SCHEDULE": schedule.name, "FLEET_SCHEDULE_DUE": utc_iso(due)}
        since = self.clock.now() - timedelta(seconds=5)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [*self.command(schedule), *schedule.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C of the scheduler does not halt its runs
            )
        self.children.append(proc)
        return self._link(proc, since, log)

    def _link(self, proc: subprocess.Popen[bytes], since: datetime, log: Path) -> Launch:
        deadline = self.clock.monotonic() + self.link_timeout
        for _ in range(int(self.link_timeout / 0.05) + 2):
            exited = proc.poll()
            run = self._run_of(proc.pid, since)
            if run is not None:
                return Launch(True, run.id, proc.pid, f"log {log}")
            if exited is not None:
                tail = log.read_text(errors="replace")[-400:].strip()
                return Launch(False, None, proc.pid, f"exited {exited} before a run: {tail}")
            if self.clock.monotonic() >= deadline:
                break
            self.clock.sleep(0.05)
        return Launch(True, None, proc.pid, f"run not seen yet; log {log}")

    def _run_of(self, pid: int, since: datetime) -> RunRecord | None:
        machine = socket.gethostname()
        for run in self.store.list_runs(limit=50):
            o = run.owner
            if o.pid == pid and o.machine == machine and (run.created_at or since) >= since:
                return run
        return None

    def reap(self) -> list[int]:
        """Forget children that ended (no zombies); their exit codes."""
        ended = [p for p in self.children if p.poll() is not None]
        self.children = [p for p in self.children if p.returncode is None]
        return [int(p.returncode) for p in ended]

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every child to end (``--wait``)."""
        for proc in self.children:
            proc.wait(timeout=timeout)
        self.reap()
