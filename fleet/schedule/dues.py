"""Due times of cron schedules, the missed-run decision and calendar-wise expiries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet.clock import utc_iso
from fleet.schedule.cron import parse_cron
from fleet.schedule.timeutil import (
    _DST_SLACK,
    MAX_CRON_STEPS,
    NEXT_OPEN_HORIZON,
    add_months,
    cron_starts,
    load_zone,
    parse_duration,
    resolve_local,
    wall_time,
)
from fleet.store.base import ScheduleRecord


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
    walk = parse_cron(expr).walk(wall_time(until, tz) + _DST_SLACK, backwards=True)
    for _, wall in zip(range(MAX_CRON_STEPS), walk, strict=False):
        at = resolve_local(wall, tz)
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
