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

The package: :mod:`~fleet.schedule.timeutil` (zones, :func:`resolve_local`, calendar arithmetic,
durations, cron starts), :mod:`~fleet.schedule.periods`, :mod:`~fleet.schedule.rules`,
:mod:`~fleet.schedule.windows` and :mod:`~fleet.schedule.timetable` (windows and when they are
open), :mod:`~fleet.schedule.guard` (keeping a rollout inside them), :mod:`~fleet.schedule.dues`,
:mod:`~fleet.schedule.launcher` and :mod:`~fleet.schedule.scheduler` (cron schedules). Import
from ``fleet.schedule``: the submodules are its implementation.
"""

from __future__ import annotations

from fleet.schedule.dues import Decision, cron_dues, decide, expiry_after, last_due, next_due
from fleet.schedule.guard import (
    DurationEstimate,
    StartPlan,
    WindowGuard,
    attach_windows,
    host_durations,
    plan_start,
    window_hooks,
)
from fleet.schedule.launcher import Launch, Launcher, SubprocessLauncher
from fleet.schedule.periods import Period, clip, intersect, merge, subtract
from fleet.schedule.rules import CronRule, WeeklyRule
from fleet.schedule.scheduler import LEADER_LEASE, FireResult, Scheduler, scheduler_owner
from fleet.schedule.timetable import AllOf, Timetable, WindowSet, timetable_for
from fleet.schedule.timeutil import (
    MAX_CRON_STEPS,
    NEXT_OPEN_HORIZON,
    OPEN_UNTIL_HORIZON,
    add_months,
    add_years,
    check_cron,
    cron_starts,
    format_duration,
    load_zone,
    parse_duration,
    resolve_local,
    wall_time,
)
from fleet.schedule.windows import Scope, Window, load_windows, parse_window

__all__ = [
    "LEADER_LEASE",
    "MAX_CRON_STEPS",
    "NEXT_OPEN_HORIZON",
    "OPEN_UNTIL_HORIZON",
    "AllOf",
    "CronRule",
    "Decision",
    "DurationEstimate",
    "FireResult",
    "Launch",
    "Launcher",
    "Period",
    "Scheduler",
    "Scope",
    "StartPlan",
    "SubprocessLauncher",
    "Timetable",
    "WeeklyRule",
    "Window",
    "WindowGuard",
    "WindowSet",
    "add_months",
    "add_years",
    "attach_windows",
    "check_cron",
    "clip",
    "cron_dues",
    "cron_starts",
    "decide",
    "expiry_after",
    "format_duration",
    "host_durations",
    "intersect",
    "last_due",
    "load_windows",
    "load_zone",
    "merge",
    "next_due",
    "parse_duration",
    "parse_window",
    "plan_start",
    "resolve_local",
    "scheduler_owner",
    "subtract",
    "timetable_for",
    "wall_time",
    "window_hooks",
]
