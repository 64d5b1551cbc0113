"""The halt watch of a rollout, on a real SQLite store: a halt set by another process's store
object stops the rollout and is journaled once; no halt, no stop; a failing read is retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.engine.halts import HaltWatch
from fleet.engine.journal import Journal
from fleet.engine.leases import StopSignal
from fleet.errors import StoreError
from fleet.store.base import HaltState
from fleet.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "fleet.db")
    yield opened
    opened.close()


def test_a_halt_set_elsewhere_stops_the_rollout_and_is_journaled(
    store: SqliteStore, tmp_path: Path
) -> None:
    stop = StopSignal()
    elsewhere = SqliteStore(tmp_path / "fleet.db")  # another operator's process
    try:
        with HaltWatch(store, stop, Journal(store, "r-1")):
            assert not stop.soft.wait(0.5)
            elsewhere.set_halt("carol (carol@desk)", "storage alerts")
            assert stop.soft.wait(60), "the watch never heard the halt"
    finally:
        elsewhere.close()
    assert stop.reason == "global halt by carol (carol@desk): storage alerts"
    assert not stop.hard.is_set()
    (event,) = store.events("r-1")
    assert (event.kind, event.excerpt) == ("run.halt", stop.reason)
    assert event.data["who"] == "carol (carol@desk)"


def test_without_a_halt_nothing_stops_and_close_is_prompt(store: SqliteStore) -> None:
    stop = StopSignal()
    watch = HaltWatch(store, stop, Journal(store, "r-1"))
    with watch:
        assert not stop.soft.wait(0.3)
    assert not watch._thread.is_alive()
    assert store.events("r-1") == [] and not stop.soft.is_set()


def test_an_earlier_stop_keeps_its_reason_and_nothing_is_journaled(store: SqliteStore) -> None:
    stop = StopSignal()
    stop.request("interrupted by the operator")
    store.set_halt("carol", "later")
    with HaltWatch(store, stop, Journal(store, "r-1")):
        pass
    assert stop.reason == "interrupted by the operator"
    assert store.events("r-1") == []


class Flaky(SqliteStore):
    """A store whose first halt read fails, as when the database is briefly unreachable."""

    failures = 1

    def wait_halt(self, timeout: float) -> HaltState | None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database unreachable")
        return super().wait_halt(timeout)


def test_a_failed_read_is_retried(tmp_path: Path) -> None:
    flaky = Flaky(tmp_path / "fleet.db")
    stop = StopSignal()
    try:
        flaky.set_halt("carol", "now")
        with HaltWatch(flaky, stop, Journal(flaky, "r-1")):
            assert stop.soft.wait(60)
        assert flaky.failures == 0 and stop.reason == "global halt by carol: now"
    finally:
        flaky.close()
