"""The run's owner and fenced writes in the SQLite store, on real files: claims, takeovers,
re-issued host leases, writes refused once their tokens are stale (also inside a group commit
shared with live writers), and an older store file migrated with its runs and leases."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.errors import LeaseLost, RunOwned
from fleet.store.base import Event, Fence, Owner, RunRecord
from fleet.store.sqlite import _MIGRATIONS, _SCHEMA, SqliteStore
from tests.integration.test_store_sqlite import FakeClock

pytestmark = pytest.mark.integration

T0 = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
FIRST = Owner("alice", "laptop", 101, "r-1", 1000.25, "aaaa")
SECOND = Owner("alice", "laptop", 102, "r-1", 2000.5, "bbbb")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "fleet.db", clock=clock)
    opened.create_run(run("r-1"))
    try:
        yield opened
    finally:
        opened.close()


def run(run_id: str, owner: Owner = FIRST) -> RunRecord:
    return RunRecord(run_id, "p", "p.yaml", "h", ("ns1", "ns2"), {}, owner)


def event(kind: str, host: str | None = None) -> Event:
    return Event("r-1", kind, T0, host=host)


def test_a_claim_gives_the_run_an_owner_and_a_token(store: SqliteStore) -> None:
    assert store.get_run("r-1").lease is None
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    record = store.get_run("r-1")
    assert record.lease == lease and record.owner == FIRST
    assert lease.expires_at == T0 + timedelta(seconds=60)
    assert [e.kind for e in store.events("r-1")] == []  # its creator claiming: no takeover


def test_a_claim_on_a_changed_token_is_refused_naming_the_owner(store: SqliteStore) -> None:
    first = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    with pytest.raises(RunOwned, match="pid 101"):
        store.claim_run("r-1", SECOND, 60, replacing=None, why="stale read")
    with pytest.raises(RunOwned):
        store.claim_run("r-1", SECOND, 60, replacing=first.token + 1, why="forged")
    assert store.get_run("r-1").lease == first


def test_a_takeover_reissues_host_leases_and_is_audited(store: SqliteStore) -> None:
    first = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    held = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", first.token))
    other_run = store.acquire_lease("ns2", Owner("bob", "desk", 7, "r-9"), 60)
    second = store.claim_run("r-1", SECOND, 60, replacing=first.token, why="pid 101 is gone")
    assert second.token > held.token > first.token
    leases = {le.host: le for le in store.list_leases()}
    assert leases["ns1"].owner == SECOND and leases["ns1"].token > second.token
    assert leases["ns2"] == other_run  # another run's lease is left alone
    (audit,) = store.events("r-1")
    assert audit.kind == "run.takeover"
    assert audit.data["from"] == str(FIRST) and audit.data["hosts"] == ["ns1"]
    assert audit.data["why"] == "pid 101 is gone" and audit.data["token"] == second.token


def test_stale_writes_are_refused_and_live_ones_pass(store: SqliteStore) -> None:
    first = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    ns1 = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", first.token))
    old_run, old_host = Fence("r-1", first.token), Fence("r-1", first.token, "ns1", ns1.token)
    store.record(event("step.start", "ns1"), old_host)
    store.set_run_state("r-1", "running", fence=old_run)
    second = store.claim_run("r-1", SECOND, 60, replacing=first.token, why="dead")
    for write in (
        lambda: store.record(event("step.end", "ns1"), old_host),
        lambda: store.record(event("batch.end"), old_run),
        lambda: store.set_run_state("r-1", "done", fence=old_run),
        lambda: store.quarantine("ns1", "r-1", "failed", fence=old_run),
        lambda: store.acquire_lease("ns2", FIRST, 60, fence=old_run),
    ):
        with pytest.raises(LeaseLost, match="taken over by alice@laptop pid 102"):
            write()
    assert store.get_run("r-1").state == "running" and store.quarantined() == []
    assert [e.kind for e in store.events("r-1")] == ["step.start", "run.takeover"]
    new_host = store.acquire_lease("ns1", SECOND, 60, fence=Fence("r-1", second.token))
    store.record(event("step.end", "ns1"), Fence("r-1", second.token, "ns1", new_host.token))
    store.set_run_state("r-1", "done", fence=Fence("r-1", second.token))
    assert store.get_run("r-1").state == "done"


def test_a_broken_host_lease_refuses_that_hosts_writes_only(store: SqliteStore) -> None:
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    ns1 = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", lease.token))
    ns2 = store.acquire_lease("ns2", FIRST, 60, fence=Fence("r-1", lease.token))
    store.break_lease("ns1", "carol", "stuck")
    with pytest.raises(LeaseLost, match="ns1: lease lost"):
        store.record(event("step.end", "ns1"), Fence("r-1", lease.token, "ns1", ns1.token))
    store.record(event("step.end", "ns2"), Fence("r-1", lease.token, "ns2", ns2.token))


def test_breaking_and_releasing_a_run_lease(store: SqliteStore, clock: FakeClock) -> None:
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    clock.advance(30)
    renewed = store.renew_run(lease, 60)
    assert renewed.expires_at == T0 + timedelta(seconds=90)
    broken = store.break_run_lease("r-1", "carol", "hung")
    assert broken is not None and broken.owner == FIRST
    assert store.break_run_lease("r-1", "carol", "again") is None
    with pytest.raises(LeaseLost, match="broken or released"):
        store.renew_run(renewed, 60)
    with pytest.raises(LeaseLost):
        store.record(event("batch.end"), Fence("r-1", lease.token))
    (audit,) = store.events("r-1")
    assert audit.kind == "run.lease.break" and audit.data["who"] == "carol"
    again = store.claim_run("r-1", SECOND, 60, replacing=lease.token, why="broken")
    store.release_run(again)
    record = store.get_run("r-1").lease
    assert record is not None and record.expires_at is None and record.token == again.token


def test_a_group_commit_refuses_only_its_stale_rows(tmp_path: Path, clock: FakeClock) -> None:
    """Many threads write at once, one of them with a stale fence: only that one is refused."""
    path = tmp_path / "fleet.db"
    store = SqliteStore(path, clock=clock)
    try:
        store.create_run(run("r-1"))
        lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
        live, stale = Fence("r-1", lease.token), Fence("r-1", lease.token - 1)
        outcomes: list[str] = []
        lock = threading.Lock()

        def write(i: int) -> None:
            try:
                store.record(event(f"e{i}"), stale if i % 10 == 3 else live)
                result = "ok"
            except LeaseLost:
                result = "refused"
            with lock:
                outcomes.append(f"{i}:{result}")

        threads = [threading.Thread(target=write, args=(i,)) for i in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = sorted(int(o.split(":")[0]) for o in outcomes if o.endswith("refused"))
        assert refused == [i for i in range(60) if i % 10 == 3]
        kinds = sorted(e.kind for e in store.events("r-1"))
        assert kinds == sorted(f"e{i}" for i in range(60) if i % 10 != 3)
    finally:
        store.close()


def test_a_version_2_file_is_migrated_with_its_runs_and_leases(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in (_SCHEMA, _MIGRATIONS[2]):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute(
        "INSERT INTO runs VALUES ('r-old', 'p', 'p.yaml', 'h', '[\"ns1\"]', '{}', 'bob', 'desk',"
        " 9, 'r-old', 'running', NULL, '2024-01-01T00:00:00.000+00:00',"
        " '2024-01-01T00:00:00.000+00:00')"
    )
    conn.execute(
        "INSERT INTO leases VALUES ('ns1', 'bob', 'desk', 9, 'r-old', 5,"
        " '2024-01-01T00:00:00.000+00:00', '2024-01-01T00:05:00.000+00:00')"
    )
    conn.execute("UPDATE lease_tokens SET last = 5")  # as that lease's grant left it
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = SqliteStore(path, clock=clock)
    try:
        old = store.get_run("r-old")
        assert old.lease is None and old.owner == Owner("bob", "desk", 9, "r-old")
        lease = store.claim_run("r-old", SECOND, 60, replacing=None, why="dead")
        (ns1,) = store.list_leases()
        assert ns1.owner == SECOND and ns1.token > 5 and lease.token > 5
        (audit,) = store.events("r-old")
        assert audit.kind == "run.takeover" and audit.data["from"] == "bob@desk pid 9 run r-old"
    finally:
        store.close()
