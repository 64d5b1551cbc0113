"""The scheduler loop on a controllable clock: due times across DST changes, Feb 29 and year ends,
missed runs (skip / once), pause, expiry, the global halt. What the store itself guarantees
(schedules, fires recorded once, the leader lease handed over, racing schedulers) is in the store
conformance suite, run on every backend: tests/integration/store/test_schedules.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.clock import FakeClock
from fleet.schedule import (
    Launch,
    Scheduler,
    cron_dues,
    decide,
    last_due,
    next_due,
    scheduler_owner,
)
from fleet.store.base import Owner, ScheduleRecord
from fleet.store.sqlite import SqliteStore


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class RecordingLauncher:
    """Counts launches instead of starting processes (the wiring has its own tests)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.launched: list[tuple[str, datetime, datetime | None]] = []
        self.clock = clock
        self._lock = threading.Lock()

    def launch(self, schedule: ScheduleRecord, due: datetime) -> Launch:
        with self._lock:
            self.launched.append((schedule.name, due, self.clock.now() if self.clock else None))
            return Launch(True, f"r-{schedule.name}-{len(self.launched)}", None, "")


def schedule(name: str = "nightly", **kw: object) -> ScheduleRecord:
    values: dict[str, object] = {
        "plan": "builtin:hello",
        "cron": "30 2 * * *",
        "tz": "Europe/Paris",
        "created_by": "test",
    }
    values.update(kw)
    return ScheduleRecord(name=name, **values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 3, 27, 12))


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "fleet.db", clock=clock)
    yield s
    s.close()


def fire_times(scheduler: Scheduler, clock: FakeClock, until: datetime) -> list[datetime]:
    """Tick every minute until ``until``; the clock instants of the launches."""
    launcher = scheduler.launcher
    assert isinstance(launcher, RecordingLauncher)
    for _ in range(100_000):
        if clock.now() >= until:
            break
        scheduler.tick()
        clock.advance(timedelta(seconds=60))
    return [at for _, _, at in launcher.launched if at is not None]


# -- due times ----------------------------------------------------------------------------------


def test_due_times_across_both_dst_changes() -> None:
    spring = list(cron_dues("30 2 * * *", "Europe/Paris", utc(2026, 3, 27), utc(2026, 3, 31)))
    assert spring == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: at the jump (03:00 CEST)
        utc(2026, 3, 30, 0, 30),
    ]
    fall = list(cron_dues("30 2 * * *", "Europe/Paris", utc(2026, 10, 24), utc(2026, 10, 27)))
    assert fall == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # 02:30 happens twice: once, the first time
        utc(2026, 10, 26, 1, 30),
    ]
    hourly = list(
        cron_dues("0 * * * *", "Europe/Paris", utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    )
    assert hourly == [utc(2026, 10, 25, h) for h in (0, 2, 3)]  # 02:00 local fires once


def test_due_times_on_feb_29_and_year_ends() -> None:
    assert next_due("0 2 29 2 *", "Europe/Paris", utc(2028, 2, 28)) == utc(2028, 2, 29, 1)
    assert next_due("0 2 29 2 *", "Europe/Paris", utc(2028, 2, 29, 1)) == utc(2032, 2, 29, 1)
    assert next_due("0 2 29 2 *", "Europe/Paris", utc(2029, 1, 1)) == utc(2032, 2, 29, 1)
    assert last_due("0 2 29 2 *", "Europe/Paris", utc(2031, 12, 31)) == utc(2028, 2, 29, 1)
    assert next_due("59 23 31 12 *", "UTC", utc(2026, 12, 31, 23, 59)) == utc(2027, 12, 31, 23, 59)
    assert next_due("0 0 1 1 *", "Europe/Paris", utc(2026, 12, 31, 12)) == utc(2026, 12, 31, 23)
    assert next_due("0 3 * * 4", "UTC", utc(2026, 12, 30)) == utc(2026, 12, 31, 3)  # W53 Thursday


def test_decide_missed_policies() -> None:
    s = schedule(since=utc(2026, 3, 20), created_at=utc(2026, 3, 20))
    on_time = decide(s, utc(2026, 3, 28, 1, 31), timedelta(minutes=5))
    assert (on_time.action, on_time.due) == ("fire", utc(2026, 3, 28, 1, 30))
    assert "8 earlier slot(s) missed" in on_time.reason
    late = decide(s, utc(2026, 3, 28, 9), timedelta(minutes=5))
    assert (late.action, late.due) == ("skip", utc(2026, 3, 28, 1, 30))
    assert "9 slot(s) missed" in late.reason
    once = decide(
        schedule(missed="once", since=utc(2026, 3, 20)), utc(2026, 3, 28, 9), timedelta(0)
    )
    assert (once.action, once.due) == ("fire", utc(2026, 3, 28, 1, 30))
    done = schedule(since=utc(2026, 3, 20), last_due=utc(2026, 3, 28, 1, 30))
    assert decide(done, utc(2026, 3, 28, 9), timedelta(0)).action == "none"
    expired = schedule(since=utc(2026, 3, 20), expires_at=utc(2026, 3, 28))
    assert decide(expired, utc(2026, 3, 28, 1, 31), timedelta(minutes=5)).action == "none"


# -- the scheduler on a controllable clock ------------------------------------------------------


def test_fires_at_the_right_utc_instants_across_spring_forward(
    store: SqliteStore, clock: FakeClock
) -> None:
    store.add_schedule(schedule())
    scheduler = Scheduler(store, RecordingLauncher(clock), clock=clock)
    fired = fire_times(scheduler, clock, utc(2026, 3, 31))
    assert fired == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    dues = [f.due_at for f in store.schedule_fires("nightly")]
    assert dues == [utc(2026, 3, 30, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 28, 1, 30)]


def test_fires_once_on_fall_back_day(tmp_path: Path) -> None:
    clock = FakeClock(utc(2026, 10, 24, 12))
    store = SqliteStore(tmp_path / "f.db", clock=clock)
    try:
        store.add_schedule(schedule())
        scheduler = Scheduler(store, RecordingLauncher(clock), clock=clock)
        fired = fire_times(scheduler, clock, utc(2026, 10, 26, 12))
        assert fired == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    finally:
        store.close()


def test_missed_runs_skip_or_once(store: SqliteStore, clock: FakeClock) -> None:
    store.add_schedule(schedule("skipper"))
    store.add_schedule(schedule("oncer", missed="once"))
    launcher = RecordingLauncher(clock)
    scheduler = Scheduler(store, launcher, clock=clock)
    clock.set(utc(2026, 3, 30, 9))  # the scheduler was down over three due times
    results = {r.schedule: r for r in scheduler.tick()}
    assert (
        results["skipper"].action == "skipped" and "3 slot(s) missed" in results["skipper"].detail
    )
    assert results["oncer"].action == "started"
    assert [(n, d) for n, d, _ in launcher.launched] == [("oncer", utc(2026, 3, 30, 0, 30))]
    assert scheduler.tick() == []  # nothing again for the same slots
    (skip,) = store.schedule_fires("skipper")
    assert (skip.outcome, skip.due_at) == ("skipped", utc(2026, 3, 30, 0, 30))


def test_pause_skips_due_times_and_resume_does_not_catch_up(
    store: SqliteStore, clock: FakeClock
) -> None:
    store.add_schedule(schedule(missed="once"))
    store.set_schedule_paused("nightly", True, "op")
    launcher = RecordingLauncher(clock)
    scheduler = Scheduler(store, launcher, clock=clock)
    assert fire_times(scheduler, clock, utc(2026, 3, 29, 12)) == []
    store.set_schedule_paused("nightly", False, "op")
    assert scheduler.tick() == []  # slots passed while paused are not run, even with "once"
    assert fire_times(scheduler, clock, utc(2026, 3, 31)) == [utc(2026, 3, 30, 0, 30)]


def test_global_halt_prevents_starts_then_missed_policy_applies(
    store: SqliteStore, clock: FakeClock
) -> None:
    store.add_schedule(schedule(missed="once"))
    store.set_halt("op", "storage alerts")
    launcher = RecordingLauncher(clock)
    scheduler = Scheduler(store, launcher, clock=clock)
    clock.set(utc(2026, 3, 28, 1, 30))
    assert [r.action for r in scheduler.tick()] == ["halted"]
    clock.set(utc(2026, 3, 28, 6))
    assert [r.action for r in scheduler.tick()] == ["halted"]
    assert launcher.launched == [] and store.schedule_fires("nightly") == []
    store.clear_halt("op")
    assert [r.action for r in scheduler.tick()] == ["started"]  # once, for the missed slot
    assert [d for _, d, _ in launcher.launched] == [utc(2026, 3, 28, 1, 30)]


def test_expired_schedule_stops_firing(store: SqliteStore, clock: FakeClock) -> None:
    store.add_schedule(schedule(expires_at=utc(2026, 3, 29, 0, 0)))
    scheduler = Scheduler(store, RecordingLauncher(clock), clock=clock)
    assert fire_times(scheduler, clock, utc(2026, 3, 30, 12)) == [utc(2026, 3, 28, 1, 30)]


def test_a_schedule_added_on_feb_29_fires_yearly_without_error(tmp_path: Path) -> None:
    clock = FakeClock(utc(2028, 2, 29, 0, 30))
    store = SqliteStore(tmp_path / "leap.db", clock=clock)
    try:
        store.add_schedule(schedule(cron="0 2 29 2 *", tz="UTC"))
        launcher = RecordingLauncher(clock)
        scheduler = Scheduler(store, launcher, clock=clock)
        clock.set(utc(2028, 2, 29, 2, 0, 10))
        scheduler.tick()
        for year in (2029, 2030, 2031):  # no Feb 29: nothing fires, nothing breaks
            clock.set(utc(year, 3, 1, 2))
            assert scheduler.tick() == []
        clock.set(utc(2032, 2, 29, 2, 0, 10))
        scheduler.tick()
        assert [d for _, d, _ in launcher.launched] == [utc(2028, 2, 29, 2), utc(2032, 2, 29, 2)]
    finally:
        store.close()


# -- two schedulers -----------------------------------------------------------------------------


def test_two_scheduler_owners_in_one_process_are_distinct() -> None:
    """Equal owners would share the leader lease (a renewal, not a refusal)."""
    first, second = scheduler_owner(), scheduler_owner()
    assert isinstance(first, Owner) and first != second
