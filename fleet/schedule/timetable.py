"""Timetables: when something may start, from windows (deny wins) and their intersections."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache, reduce
from typing import TYPE_CHECKING

from fleet.schedule.periods import Period, clip, intersect, merge, subtract
from fleet.schedule.timeutil import NEXT_OPEN_HORIZON, OPEN_UNTIL_HORIZON, _aware
from fleet.schedule.windows import Window

if TYPE_CHECKING:
    from fleet.inventory import Host

#: Open periods are computed and kept by blocks of this length, aligned on the epoch.
_BLOCK = timedelta(days=8)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Blocks kept per timetable (about eleven years of 8-day blocks: a whole horizon).
_KEPT_BLOCKS = 512
_BLOCKS_LOCK = threading.RLock()


class Timetable(ABC):
    """When something may start. Subclasses give :meth:`open_periods`; the queries are pure."""

    @abstractmethod
    def open_periods(self, start: datetime, end: datetime) -> list[Period]:
        """The open periods within [start, end): sorted, merged, clipped to the range."""

    def periods_from(self, at: datetime, horizon: timedelta) -> Iterator[Period]:
        """Open periods from ``at`` to ``at + horizon``, merged across the blocks computed
        (a period cut by the horizon ends exactly at ``at + horizon``).

        Periods are computed by fixed blocks of :data:`_BLOCK` (aligned on the epoch) and each
        block is kept, so a rollout asking again and again (before every batch, before every
        host) computes each window's week once, not once per question."""
        end_all = _aware(at) + horizon
        index = (at - _EPOCH) // _BLOCK
        pending: Period | None = None
        while (lo := _EPOCH + index * _BLOCK) < end_all:
            hi = min(lo + _BLOCK, end_all)
            for p in clip(self._block(index), max(lo, at), hi):
                if pending and p.start <= pending.end:
                    pending = Period(pending.start, max(pending.end, p.end))
                    continue
                if pending:
                    yield pending
                pending = p
            if pending and pending.end < hi:
                yield pending
                pending = None
            index += 1
        if pending:
            yield pending

    def _block(self, index: int) -> list[Period]:
        """The open periods of block ``index``, computed once (the last few hundred are kept)."""
        with _BLOCKS_LOCK:  # rollouts ask from several threads
            blocks: dict[int, list[Period]] = self.__dict__.setdefault("_blocks", {})
            if index not in blocks:
                if len(blocks) >= _KEPT_BLOCKS:
                    blocks.pop(next(iter(blocks)))
                lo = _EPOCH + index * _BLOCK
                blocks[index] = self.open_periods(lo, lo + _BLOCK)
            return blocks[index]

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
    """When all of ``hosts`` may start: each host under the windows whose scope holds it.

    Timetables are shared: the same windows give the same object, whose computed blocks are
    reused by every later question."""
    groups = {tuple(w for w in windows if w.scope.matches(h)): None for h in hosts}
    if not hosts:
        groups = {tuple(w for w in windows if w.scope.kind == "fleet"): None}
    return _shared(tuple(ws for ws in groups if ws))


@lru_cache(maxsize=256)
def _shared(groups: tuple[tuple[Window, ...], ...]) -> Timetable:
    parts: list[Timetable] = [_window_set(ws) for ws in groups]
    return parts[0] if len(parts) == 1 else AllOf(parts)


@lru_cache(maxsize=1024)
def _window_set(windows: tuple[Window, ...]) -> WindowSet:
    return WindowSet(windows)
