"""Timetables: when something may start, from windows (deny wins) and their intersections."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import reduce
from typing import TYPE_CHECKING

from fleet.schedule.periods import Period, clip, intersect, merge, subtract
from fleet.schedule.timeutil import NEXT_OPEN_HORIZON, OPEN_UNTIL_HORIZON, _aware
from fleet.schedule.windows import Window

if TYPE_CHECKING:
    from fleet.inventory import Host


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
