"""Runs and their journal, on every backend: round trips, UTC instants, order, 50 writers."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from fleet.errors import StoreError
from fleet.store.base import Event, Store
from tests.integration.store.backends import (
    ALICE,
    T0,
    Backend,
    SyncedClock,
    assert_utc,
    make_run,
)

pytestmark = pytest.mark.integration


def test_reopen_keeps_data(backend: Backend, clock: SyncedClock) -> None:
    first = backend.open(clock=clock)
    first.create_run(make_run("r-keep"))
    first.close()
    second = backend.open(clock=clock)
    try:
        assert second.get_run("r-keep").hosts == ("ns1", "ns2")
    finally:
        second.close()


def test_run_round_trip(store: Store) -> None:
    store.create_run(make_run("r-1"))
    run = store.get_run("r-1")
    assert run == replace(make_run("r-1"), created_at=T0, updated_at=T0)
    assert run.owner == ALICE
    assert run.options == {"batch": [1, "10%"], "dry_run": False}
    assert_utc(run.created_at)
    assert_utc(run.updated_at)


def test_run_with_non_utc_created_at_comes_back_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    store.create_run(make_run("r-tz", created_at=datetime(2024, 3, 31, 3, 30, tzinfo=paris)))
    run = store.get_run("r-tz")
    assert run.created_at == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    assert_utc(run.created_at)


def test_get_unknown_run_names_it(store: Store) -> None:
    with pytest.raises(StoreError, match=r"no run 'r-xyz'; `fleet status` lists runs"):
        store.get_run("r-xyz")


def test_duplicate_run_is_refused(store: Store) -> None:
    store.create_run(make_run("r-dup"))
    with pytest.raises(StoreError, match="'r-dup' already exists"):
        store.create_run(make_run("r-dup"))
    assert [entry.run_id for entry in store.audit_trail()] == ["r-dup"]  # audited once


def test_list_runs_newest_first_with_limit(store: Store, clock: SyncedClock) -> None:
    for index in range(5):
        store.create_run(make_run(f"r-{index}"))
        clock.advance(60)
    assert [run.id for run in store.list_runs()] == ["r-4", "r-3", "r-2", "r-1", "r-0"]
    assert [run.id for run in store.list_runs(limit=2)] == ["r-4", "r-3"]


def test_runs_created_at_one_instant_list_last_created_first(store: Store) -> None:
    for index in range(3):
        store.create_run(make_run(f"r-same-{index}"))
    assert [run.id for run in store.list_runs()] == ["r-same-2", "r-same-1", "r-same-0"]


def test_set_run_state(store: Store, clock: SyncedClock) -> None:
    store.create_run(make_run("r-s"))
    clock.advance(30)
    store.set_run_state("r-s", "halted", "budget spent: 3 of 10 hosts failed")
    run = store.get_run("r-s")
    assert (run.state, run.reason) == ("halted", "budget spent: 3 of 10 hosts failed")
    assert run.created_at == T0
    assert run.updated_at == T0 + timedelta(seconds=30)


def test_set_run_state_validates(store: Store) -> None:
    store.create_run(make_run("r-v"))
    with pytest.raises(StoreError, match="unknown run state 'paused'"):
        store.set_run_state("r-v", "paused")
    with pytest.raises(StoreError, match="no run 'r-none'"):
        store.set_run_state("r-none", "done")
    assert store.get_run("r-v").state == "running"


def test_bad_run_options_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="run r-bad options is not JSON"):
        store.create_run(replace(make_run("r-bad"), options={"path": Path("/x")}))
    assert store.list_runs() == []


# ------------------------------------------------------------------------------- journal


def test_events_in_order_and_by_host(store: Store, backend: Backend) -> None:
    store.record(Event("r-1", "run.start", T0))
    store.record(Event("r-1", "step.start", T0, host="ns1", stage="disks", step="wipe"))
    store.record(Event("r-2", "run.start", T0))
    store.record(
        Event("r-1", "step.end", T0, host="ns1", outcome="ok", exit_code=0, data={"took": 1.5})
    )
    store.record(Event("r-1", "step.start", T0, host="ns2", excerpt="mdadm: ...", query_id="q-9"))
    events = store.events("r-1")
    assert [event.kind for event in events] == ["run.start", "step.start", "step.end", "step.start"]
    seqs = [event.seq or 0 for event in events]
    assert all(seq > 0 for seq in seqs)
    assert seqs == sorted(seqs)
    assert [event.kind for event in store.events("r-1", host="ns1")] == ["step.start", "step.end"]
    end = store.events("r-1", host="ns1")[1]
    assert (end.outcome, end.exit_code, end.data) == ("ok", 0, {"took": 1.5})
    last = store.events("r-1", host="ns2")[0]
    assert (last.excerpt, last.query_id, last.data) == ("mdadm: ...", "q-9", {})
    # empty data is not JSON-encoded at all
    assert backend.raw("SELECT count(*) FROM events WHERE data IS NULL") == [(4,)]


def test_record_returns_the_seq_events_come_back_with(store: Store) -> None:
    seqs = [store.record(Event("r-seq", "step.start", T0, step=str(i))) for i in range(3)]
    assert [event.seq for event in store.events("r-seq")] == seqs


def test_event_times_are_utc(store: Store) -> None:
    new_york = timezone(timedelta(hours=-5))
    store.record(
        Event("r-tz", "run.start", datetime(2024, 2, 29, 19, 0, 0, 123456, tzinfo=new_york))
    )
    (event,) = store.events("r-tz")
    assert event.at == datetime(2024, 3, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert_utc(event.at)


def test_bad_events_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="naive"):
        store.record(Event("r-1", "run.start", datetime(2024, 1, 1)))  # noqa: DTZ001
    with pytest.raises(StoreError, match="not JSON"):
        store.record(Event("r-1", "run.start", T0, data={"path": Path("/x")}))
    assert store.events("r-1") == []


def test_record_from_50_threads_loses_nothing(store: Store) -> None:
    threads_count, per_thread = 50, 40
    barrier = threading.Barrier(threads_count, timeout=30)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            for step in range(per_thread):
                store.record(Event("r-many", "step.start", T0, host=f"h{index}", step=str(step)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    events = store.events("r-many")
    assert len(events) == threads_count * per_thread
    assert len({event.seq for event in events}) == len(events)
    for index in range(threads_count):
        steps = [event.step for event in store.events("r-many", host=f"h{index}")]
        assert steps == [str(step) for step in range(per_thread)]
