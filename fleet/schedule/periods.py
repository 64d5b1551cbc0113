"""Half-open UTC periods and their set operations (union, difference, intersection)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


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
