"""The window guard of a rollout, on a real SQLite journal and a controllable clock: start now,
wait for the window, wait for a window long enough for the estimate, and stop waiting on a stop
signal or the global halt."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.clock import FakeClock, SystemClock, parse_utc
from fleet.engine.journal import Journal, Observer
from fleet.engine.leases import StopSignal
from fleet.inventory import Host
from fleet.schedule import DurationEstimate, WindowGuard, host_durations, parse_window
from fleet.store.base import Event, Owner, RunRecord
from fleet.store.sqlite import SqliteStore
from fleet.transport.base import CommandResult

OWNER = Owner("op", "box", 1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hosts(count: int) -> list[Host]:
    return [Host(name=f"h{i}", address="127.0.0.1") for i in range(count)]


class Hook:
    """An observer that calls ``action`` on events of one kind."""

    def __init__(self, kind: str, action: object) -> None:
        self.kind, self.action, self.seen = kind, action, threading.Event()

    def event(self, event: Event) -> None:
        if event.kind == self.kind:
            self.seen.set()
            if callable(self.action):
                self.action()

    def output(self, host: str, step: str, result: CommandResult) -> None:
        return None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "fleet.db")
    yield s
    s.close()


def new_run(store: SqliteStore, run_id: str, plan: str = "app") -> RunRecord:
    run = RunRecord(run_id, plan, "adhoc", "h", ("h0",), {}, OWNER)
    store.create_run(run)
    return run


def past_run(store: SqliteStore, run_id: str, minutes: float, count: int = 3) -> None:
    """An earlier run of the same plan whose hosts each took ``minutes``."""
    new_run(store, run_id)
    t0 = utc(2026, 1, 1)
    for i in range(count):
        at = t0 + timedelta(hours=i)
        store.record(Event(run_id, "host.start", at, host=f"h{i}"))
        store.record(
            Event(run_id, "host.end", at + timedelta(minutes=minutes), host=f"h{i}", outcome="ok")
        )
    store.record(Event(run_id, "host.start", t0, host="bad"))
    store.record(Event(run_id, "host.end", t0 + timedelta(hours=9), host="bad", outcome="failed"))


def guard(
    store: SqliteStore,
    clock: FakeClock,
    windows: list[str],
    observers: list[Observer] | None = None,
    concurrency: int = 2,
) -> tuple[WindowGuard, StopSignal]:
    run = new_run(store, "r-now")
    stop = StopSignal()
    journal = Journal(store, run.id, observers or [], clock)
    g = WindowGuard(
        [parse_window(w) for w in windows],
        store=store,
        journal=journal,
        run=run,
        stop=stop,
        concurrency=concurrency,
        clock=clock,
        poll=60,
    )
    return g, stop


def kinds(store: SqliteStore) -> list[str]:
    return [e.kind for e in store.events("r-now") if e.kind.startswith("window.")]


def test_open_window_starts_at_once(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 3, 28, 2))
    g, _ = guard(store, clock, ["Sat 02:00-05:00 Europe/Paris"])
    assert g.before_batch(1, hosts(3))
    (event,) = store.events("r-now")
    assert event.kind == "window.open" and event.data["until"] == "2026-03-28T04:00:00.000+00:00"
    assert clock.now() < utc(2026, 3, 28, 2, 1)


def test_closed_window_waits_for_the_next_across_dst(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 3, 28, 5))  # Saturday, after the window (04:00 UTC)
    g, _ = guard(store, clock, ["Sat 02:00-05:00 Europe/Paris"])
    assert g.before_batch(2, hosts(3))
    wait, opened = store.events("r-now")
    assert wait.kind == "window.wait" and opened.kind == "window.open"
    assert wait.data["until"] == "2026-04-04T00:00:00.000+00:00"  # 02:00 CEST
    assert wait.data["reason"] == "outside the maintenance window" and wait.data["batch"] == 2
    assert opened.at >= utc(2026, 4, 4, 0, 0)


def test_estimate_from_earlier_runs_decides_whether_a_batch_fits(store: SqliteStore) -> None:
    past_run(store, "r-old-1", minutes=40)
    past_run(store, "r-old-2", minutes=20)
    new_run(store, "r-other-plan", plan="other")
    clock = FakeClock(utc(2026, 3, 28, 3))  # 1 h left in the window
    g, _ = guard(store, clock, ["Sat 02:00-05:00 Europe/Paris", "Sun 02:00-08:00 Europe/Paris"])
    assert g.estimate.host_seconds() == pytest.approx(30 * 60)
    assert g.before_batch(1, hosts(2))  # one wave of 30 min: fits in the hour left
    assert g.before_batch(2, hosts(6))  # three waves: 90 min does not fit; Sunday's 6 h does
    events = [e for e in store.events("r-now") if e.kind.startswith("window.")]
    assert [e.kind for e in events] == ["window.open", "window.wait", "window.open"]
    # Sunday 02:00 Paris does not exist on 2026-03-29: the window opens at the jump, 03:00 CEST
    assert events[1].data["until"] == "2026-03-29T01:00:00.000+00:00"
    assert "does not fit in the 1h left" in events[1].data["reason"]
    assert events[1].data["estimate_s"] == pytest.approx(90 * 60)


def test_before_host_waits_per_host(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 1, 5, 12))
    g, _ = guard(store, clock, ["daily 02:00-04:00 UTC on label:role=storage"])
    web = Host(name="w", address="127.0.0.1", labels={"role": "web"})
    storage = Host(name="s", address="127.0.0.1", labels={"role": "storage"})
    assert g.before_host(web) and clock.now() < utc(2026, 1, 5, 12, 1)
    assert g.before_host(storage)
    wait = next(e for e in store.events("r-now") if e.kind == "window.wait")
    assert wait.host == "s" and parse_utc(wait.data["until"]) == utc(2026, 1, 6, 2)


def test_stop_signal_ends_the_wait(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 3, 28, 5))
    stop_box: list[StopSignal] = []
    hook = Hook("window.wait", lambda: stop_box[0].request("operator interrupt"))
    g, stop = guard(store, clock, ["Sat 02:00-05:00 Europe/Paris"], [hook])
    stop_box.append(stop)
    assert not g.before_batch(1, hosts(1))
    assert kinds(store) == ["window.wait"] and clock.now() < utc(2026, 3, 28, 6)


def test_global_halt_ends_the_wait(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 3, 28, 5))
    hook = Hook("window.wait", lambda: store.set_halt("op", "storage alerts"))
    g, stop = guard(store, clock, ["Sat 02:00-05:00 Europe/Paris"], [hook])
    assert not g.before_batch(1, hosts(1))
    assert stop.soft.is_set() and "global halt by op: storage alerts" in stop.reason


def test_no_window_ever_stops_the_run(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 3, 28, 5))
    g, stop = guard(store, clock, ["Sat 02:00-05:00 UTC", "deny daily 00:00-24:00 UTC"])
    assert not g.before_batch(1, hosts(1))
    assert "no maintenance window" in stop.reason


def test_a_stop_interrupts_a_real_time_wait_at_once(store: SqliteStore) -> None:
    """With the real clock the guard waits on the stop signal itself (not in poll steps)."""
    run = new_run(store, "r-now")
    stop = StopSignal()
    hook = Hook("window.wait", None)
    far = (datetime.now(UTC) + timedelta(days=3)).strftime("%a")
    g = WindowGuard(
        [parse_window(f"{far} 00:00-01:00 UTC")],
        store=store,
        journal=Journal(store, run.id, [hook]),
        run=run,
        stop=stop,
        concurrency=1,
        clock=SystemClock(),
        poll=3600,
    )
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(g.before_batch(1, hosts(1))))
    worker.start()
    try:
        assert hook.seen.wait(timeout=30)
        stop.request("operator interrupt")
        worker.join(timeout=30)
        assert not worker.is_alive() and result == [False]
    finally:
        stop.request("test end")
        worker.join(timeout=30)


def test_host_durations_pair_starts_and_successful_ends() -> None:
    t = utc(2026, 1, 1)
    events = [
        Event("r", "host.start", t, host="a"),
        Event("r", "host.start", t, host="b"),
        Event("r", "host.end", t + timedelta(seconds=90), host="a", outcome="ok"),
        Event("r", "host.end", t + timedelta(seconds=10), host="b", outcome="failed"),
        Event("r", "host.end", t + timedelta(seconds=10), host="c", outcome="ok"),
    ]
    assert host_durations(events) == [90.0]


def test_estimate_is_zero_without_history(store: SqliteStore) -> None:
    estimate = DurationEstimate(store, new_run(store, "r1"))
    assert estimate.host_seconds() is None and estimate.batch(10, 2) == timedelta(0)
