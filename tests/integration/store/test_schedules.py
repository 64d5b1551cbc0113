"""Schedules on every backend: add, pause, fire once per due time, remove (audited); a leader
lease handed over when its scheduler dies; four schedulers racing over 20 due times."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from fleet.errors import StoreError
from fleet.schedule import LEADER_LEASE, Launch, Scheduler
from fleet.store.base import ScheduleRecord, Store
from tests.integration.store.backends import Backend, SyncedClock

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 27, 12, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(name: str = "nightly", **kw: object) -> ScheduleRecord:
    values: dict[str, object] = {
        "plan": "builtin:hello",
        "cron": "30 2 * * *",
        "tz": "Europe/Paris",
        "created_by": "test",
    }
    values.update(kw)
    return ScheduleRecord(name=name, **values)  # type: ignore[arg-type]


class RecordingLauncher:
    """Counts launches instead of starting processes (the wiring has its own tests)."""

    def __init__(self) -> None:
        self.launched: list[tuple[str, datetime]] = []
        self._lock = threading.Lock()

    def launch(self, record: ScheduleRecord, due: datetime) -> Launch:
        with self._lock:
            self.launched.append((record.name, due))
            return Launch(True, f"r-{record.name}-{len(self.launched)}", None, "")


@pytest.fixture
def clock(backend: Backend) -> SyncedClock:
    return backend.clock(START)


def test_schedule_crud_and_audit(store: Store) -> None:
    added = store.add_schedule(schedule(args=("--limit", "srv-036")))
    assert added.created_at == added.since == START
    with pytest.raises(StoreError, match="already exists"):
        store.add_schedule(schedule())
    assert store.get_schedule("nightly").args == ("--limit", "srv-036")
    assert [s.name for s in store.list_schedules()] == ["nightly"]
    assert store.set_schedule_paused("nightly", True, "op").paused
    assert not store.record_schedule_fire("nightly", utc(2026, 3, 28, 1, 30), None)  # paused
    assert not store.set_schedule_paused("nightly", False, "op").paused
    assert store.record_schedule_fire("nightly", utc(2026, 3, 28, 1, 30), None, by="a")
    assert not store.record_schedule_fire("nightly", utc(2026, 3, 28, 1, 30), None, by="b")
    store.update_schedule_fire(
        "nightly", utc(2026, 3, 28, 1, 30), outcome="started", run_id="r1", detail=None
    )
    (fire,) = store.schedule_fires("nightly")
    assert (fire.by, fire.outcome, fire.run_id) == ("a", "started", "r1")
    assert store.get_schedule("nightly").last_due == utc(2026, 3, 28, 1, 30)
    assert store.remove_schedule("nightly", "op") and not store.remove_schedule("nightly", "op")
    with pytest.raises(StoreError, match="no schedule"):
        store.get_schedule("nightly")
    kinds = [e.kind for e in store.events("-")]
    assert kinds == [
        "schedule.add",
        "schedule.pause",
        "schedule.resume",
        "schedule.fire",
        "schedule.remove",
    ]
    actions = [e.action for e in store.audit_trail()]
    assert actions == kinds


def test_resume_moves_since_to_now_and_keeps_explicit_instants(
    store: Store, clock: SyncedClock
) -> None:
    added = store.add_schedule(
        schedule(since=utc(2026, 3, 1), expires_at=utc(2026, 4, 1), paused=True)
    )
    assert (added.created_at, added.since) == (START, utc(2026, 3, 1))
    clock.advance(3600)
    resumed = store.set_schedule_paused("nightly", False, "op")
    assert resumed.since == START + timedelta(hours=1)
    assert resumed.expires_at == utc(2026, 4, 1)
    with pytest.raises(StoreError, match="unknown missed policy"):
        store.add_schedule(schedule("bad", missed="twice"))


def test_only_the_leader_acts_and_a_follower_takes_over(
    backend: Backend, clock: SyncedClock
) -> None:
    a_store, b_store = backend.open(clock=clock), backend.open(clock=clock)
    try:
        a_store.add_schedule(schedule())
        launcher = RecordingLauncher()
        a = Scheduler(a_store, launcher, clock=clock, lease_ttl=60)
        b = Scheduler(b_store, launcher, clock=clock, lease_ttl=60)
        clock.set(utc(2026, 3, 28, 1, 30, 5))
        assert [r.action for r in a.tick()] == ["started"]
        assert b.tick() == [] and not b.leading
        # a dies without releasing; its lease expires; b leads, and never re-fires 03-28
        clock.advance(timedelta(seconds=61))
        assert b.tick() == [] and b.leading
        clock.set(utc(2026, 3, 29, 1, 0, 5))
        assert [r.action for r in b.tick()] == ["started"]
        assert a.tick() == [] and not a.leading  # a comes back: it lost the lead
        assert [d for _, d in launcher.launched] == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1)]
        b.close()
        assert all(lease.host != LEADER_LEASE for lease in a_store.list_leases())
    finally:
        a_store.close()
        b_store.close()


def test_racing_schedulers_record_each_due_time_once(backend: Backend) -> None:
    """Even when all believe they lead (as after a split), the store's (schedule, due time) key
    lets exactly one start each due time."""
    clock = backend.clock(utc(2026, 3, 28, 1, 30, 1))
    stores = [backend.open(clock=clock) for _ in range(4)]
    try:
        for i in range(20):
            stores[0].add_schedule(schedule(f"s{i:02d}", since=utc(2026, 3, 27)))
        launcher = RecordingLauncher()
        schedulers = [Scheduler(s, launcher, clock=clock) for s in stores]
        for sch in schedulers:  # each believes it leads
            sch._lead = lambda: True  # type: ignore[method-assign]
        barrier = threading.Barrier(len(schedulers))
        errors: list[BaseException] = []

        def race(sch: Scheduler) -> None:
            try:
                barrier.wait(timeout=10)
                sch.tick()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors and not any(t.is_alive() for t in threads)
        names = sorted(n for n, _ in launcher.launched)
        assert names == [f"s{i:02d}" for i in range(20)]
        assert all(len(stores[0].schedule_fires(f"s{i:02d}")) == 1 for i in range(20))
    finally:
        for s in stores:
            s.close()
