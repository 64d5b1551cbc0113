"""The SQLite store on real files: every method, leases across store objects, threads, processes."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet.errors import ConfigError, LeaseHeld, StoreError
from fleet.store import open_store
from fleet.store.base import Event, HaltState, Owner, RunRecord
from fleet.store.sqlite import SCHEMA_VERSION, SqliteStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fleet.store.base import Store

pytestmark = pytest.mark.integration

T0 = datetime(2024, 2, 29, 23, 59, 0, tzinfo=UTC)
ALICE = Owner("alice", "laptop", 101, "r-1")
BOB = Owner("bob", "desk", 202, "r-2")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fleet.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    opened = SqliteStore(db_path, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def other(db_path: Path, clock: FakeClock, store: SqliteStore) -> Iterator[SqliteStore]:
    """A second store object on the same file, as a second operator's process would have."""
    opened = SqliteStore(db_path, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def make_run(run_id: str, created_at: datetime | None = None) -> RunRecord:
    return RunRecord(
        id=run_id,
        plan_name="hybrid_raid",
        plan_source="builtin:hybrid_raid",
        plan_hash="sha256:abc",
        hosts=("ns1", "ns2"),
        options={"batch": [1, "10%"], "dry_run": False},
        owner=ALICE,
        created_at=created_at,
    )


def raw(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def assert_utc(at: datetime | None) -> None:
    assert at is not None
    assert at.tzinfo is not None
    assert at.utcoffset() == timedelta(0)


# ---------------------------------------------------------------------- schema and opening


def test_first_open_creates_dir_schema_and_wal(db_path: Path, store: SqliteStore) -> None:
    assert db_path.parent.is_dir()
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    tables = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "events", "leases", "lease_tokens", "quarantine", "halt", "host_keys"} <= tables


def test_reopen_keeps_data(db_path: Path, clock: FakeClock) -> None:
    first = SqliteStore(db_path, clock=clock)
    first.create_run(make_run("r-keep"))
    first.close()
    second = SqliteStore(db_path, clock=clock)
    try:
        assert second.get_run("r-keep").hosts == ("ns1", "ns2")
    finally:
        second.close()


def test_newer_schema_is_refused(db_path: Path, store: SqliteStore) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this fleet"):
        SqliteStore(db_path)


def test_memory_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a file"):
        SqliteStore(":memory:")


@pytest.mark.parametrize("form", ["path", "str", "url"])
def test_open_store_forms(tmp_path: Path, form: str) -> None:
    target = tmp_path / "a" / "b.db"
    specs: dict[str, str | Path] = {
        "path": target,
        "str": str(target),
        "url": f"sqlite:///{target}",
    }
    spec = specs[form]
    opened: Store = open_store(spec)
    try:
        opened.create_run(make_run("r-open"))
        assert opened.get_run("r-open").id == "r-open"
    finally:
        opened.close()
    assert target.is_file()


def test_open_store_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    opened = open_store("sqlite:///rel/x.db")
    opened.close()
    assert (tmp_path / "rel" / "x.db").is_file()


# ---------------------------------------------------------------------------------- runs


def test_run_round_trip(store: SqliteStore, clock: FakeClock) -> None:
    store.create_run(make_run("r-1"))
    run = store.get_run("r-1")
    assert run == replace(make_run("r-1"), created_at=T0, updated_at=T0)
    assert run.owner == ALICE
    assert run.options == {"batch": [1, "10%"], "dry_run": False}
    assert_utc(run.created_at)
    assert_utc(run.updated_at)


def test_run_with_non_utc_created_at_comes_back_in_utc(store: SqliteStore) -> None:
    paris = timezone(timedelta(hours=2))
    store.create_run(make_run("r-tz", created_at=datetime(2024, 3, 31, 3, 30, tzinfo=paris)))
    run = store.get_run("r-tz")
    assert run.created_at == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    assert_utc(run.created_at)


def test_get_unknown_run_names_it(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match=r"no run 'r-xyz'; `fleet status` lists runs"):
        store.get_run("r-xyz")


def test_duplicate_run_is_refused(store: SqliteStore) -> None:
    store.create_run(make_run("r-dup"))
    with pytest.raises(StoreError, match="'r-dup' already exists"):
        store.create_run(make_run("r-dup"))


def test_list_runs_newest_first_with_limit(store: SqliteStore, clock: FakeClock) -> None:
    for index in range(5):
        store.create_run(make_run(f"r-{index}"))
        clock.advance(60)
    assert [run.id for run in store.list_runs()] == ["r-4", "r-3", "r-2", "r-1", "r-0"]
    assert [run.id for run in store.list_runs(limit=2)] == ["r-4", "r-3"]


def test_set_run_state(store: SqliteStore, clock: FakeClock) -> None:
    store.create_run(make_run("r-s"))
    clock.advance(30)
    store.set_run_state("r-s", "halted", "budget spent: 3 of 10 hosts failed")
    run = store.get_run("r-s")
    assert (run.state, run.reason) == ("halted", "budget spent: 3 of 10 hosts failed")
    assert run.created_at == T0
    assert run.updated_at == T0 + timedelta(seconds=30)


def test_set_run_state_validates(store: SqliteStore) -> None:
    store.create_run(make_run("r-v"))
    with pytest.raises(StoreError, match="unknown run state 'paused'"):
        store.set_run_state("r-v", "paused")
    with pytest.raises(StoreError, match="no run 'r-none'"):
        store.set_run_state("r-none", "done")
    assert store.get_run("r-v").state == "running"


# ------------------------------------------------------------------------------- journal


def test_events_in_order_and_by_host(store: SqliteStore, db_path: Path) -> None:
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
    assert raw(db_path, "SELECT count(*) FROM events WHERE data IS NULL") == [(4,)]


def test_event_times_are_utc(store: SqliteStore) -> None:
    new_york = timezone(timedelta(hours=-5))
    store.record(
        Event("r-tz", "run.start", datetime(2024, 2, 29, 19, 0, 0, 123456, tzinfo=new_york))
    )
    (event,) = store.events("r-tz")
    assert event.at == datetime(2024, 3, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert_utc(event.at)


def test_bad_events_are_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="naive"):
        store.record(Event("r-1", "run.start", datetime(2024, 1, 1)))  # noqa: DTZ001
    with pytest.raises(StoreError, match="not JSON"):
        store.record(Event("r-1", "run.start", T0, data={"path": Path("/x")}))
    assert store.events("r-1") == []


def test_record_from_50_threads_loses_nothing(store: SqliteStore) -> None:
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


# -------------------------------------------------------------------------------- leases


def test_acquire_grants_and_lists(store: SqliteStore) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    assert (lease.host, lease.owner, lease.taken_at) == ("ns1", ALICE, T0)
    assert lease.expires_at == T0 + timedelta(seconds=60)
    assert store.list_leases() == [lease]
    assert_utc(lease.taken_at)
    assert_utc(store.list_leases()[0].expires_at)


def test_lease_excludes_another_store_object(store: SqliteStore, other: SqliteStore) -> None:
    mine = store.acquire_lease("ns1", ALICE, ttl=60)
    with pytest.raises(LeaseHeld) as caught:
        other.acquire_lease("ns1", BOB, ttl=60)
    assert caught.value.host == "ns1"
    assert caught.value.owner == str(ALICE)
    assert caught.value.taken_at == "2024-02-29T23:59:00.000+00:00"
    assert caught.value.expires_at == "2024-03-01T00:00:00.000+00:00"
    assert other.list_leases() == [mine]
    # another host is free
    assert other.acquire_lease("ns2", BOB, ttl=60).owner == BOB


def test_same_owner_acquire_renews_with_same_token(store: SqliteStore, clock: FakeClock) -> None:
    first = store.acquire_lease("ns1", ALICE, ttl=60)
    clock.advance(30)
    again = store.acquire_lease("ns1", ALICE, ttl=60)
    assert again.token == first.token
    assert again.taken_at == first.taken_at
    assert again.expires_at == T0 + timedelta(seconds=90)
    assert store.list_leases() == [again]


def test_same_user_other_process_is_excluded(store: SqliteStore) -> None:
    store.acquire_lease("ns1", ALICE, ttl=60)
    twin = Owner(ALICE.user, ALICE.machine, ALICE.pid + 1, ALICE.run_id)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("ns1", twin, ttl=60)


def test_expired_lease_is_taken_over(
    store: SqliteStore, other: SqliteStore, clock: FakeClock
) -> None:
    old = store.acquire_lease("ns1", ALICE, ttl=60)
    clock.advance(60)  # expires_at == now: still held
    with pytest.raises(LeaseHeld):
        other.acquire_lease("ns1", BOB, ttl=60)
    clock.advance(0.001)
    new = other.acquire_lease("ns1", BOB, ttl=60)
    assert new.owner == BOB
    assert new.token > old.token
    assert new.taken_at == T0 + timedelta(seconds=60.001)
    # the old holder has lost it: renew names the new holder, release leaves it alone
    with pytest.raises(LeaseHeld, match="bob@desk"):
        store.renew_lease(old, ttl=60)
    store.release_lease(old)
    assert store.list_leases() == [new]


def test_expired_lease_is_listed(store: SqliteStore, clock: FakeClock) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=5)
    clock.advance(3600)
    (listed,) = store.list_leases()
    assert listed == lease
    assert listed.expires_at < clock.now()


def test_renew_extends_from_now(store: SqliteStore, clock: FakeClock) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    clock.advance(50)
    renewed = store.renew_lease(lease, ttl=120)
    assert renewed.token == lease.token
    assert renewed.taken_at == lease.taken_at
    assert renewed.expires_at == T0 + timedelta(seconds=170)
    assert store.list_leases() == [renewed]
    clock.advance(500)  # expired, but nobody took it: still ours to renew
    assert store.renew_lease(renewed, ttl=10).token == lease.token


def test_renew_after_release_fails(store: SqliteStore) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    store.release_lease(lease)
    with pytest.raises(StoreError, match="lease of ns1 was broken") as caught:
        store.renew_lease(lease, ttl=60)
    assert not isinstance(caught.value, LeaseHeld)


def test_tokens_increase_across_hosts_and_survive_release(
    store: SqliteStore, other: SqliteStore, clock: FakeClock
) -> None:
    tokens = []
    for round_ in range(3):
        for host in ("ns1", "ns2", "ns3"):
            owner_store = store if round_ % 2 else other
            lease = owner_store.acquire_lease(host, ALICE, ttl=60)
            tokens.append(lease.token)
            owner_store.release_lease(lease)
    assert store.list_leases() == []
    broken = store.acquire_lease("ns1", BOB, ttl=60)
    store.break_lease("ns1", "carol", "stuck")
    tokens.append(broken.token)
    clock.advance(1)
    tokens.append(other.acquire_lease("ns1", BOB, ttl=60).token)
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)


def test_release_deletes_only_with_matching_token(store: SqliteStore) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    forged = replace(lease, token=lease.token + 1000)
    store.release_lease(forged)
    assert store.list_leases() == [lease]
    store.release_lease(lease)
    assert store.list_leases() == []


def test_bad_ttl_is_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="ttl must be positive"):
        store.acquire_lease("ns1", ALICE, ttl=0)
    assert store.list_leases() == []


def test_break_lease_is_audited_and_old_holder_loses(
    store: SqliteStore, other: SqliteStore
) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    broken = other.break_lease("ns1", "carol", "owner died")
    assert broken == lease
    assert store.list_leases() == []
    (audit,) = store.events("r-1", host="ns1")
    assert audit.kind == "lease.break"
    assert audit.data == {
        "who": "carol",
        "reason": "owner died",
        "owner": str(ALICE),
        "token": lease.token,
    }
    assert_utc(audit.at)
    with pytest.raises(StoreError, match="lease of ns1 was broken"):
        store.renew_lease(lease, ttl=60)
    assert other.break_lease("ns1", "carol", "again") is None
    assert len(store.events("r-1")) == 1


def test_break_lease_without_run_is_audited_under_dash(store: SqliteStore) -> None:
    store.acquire_lease("ns1", Owner("ops", "box", 7), ttl=60)
    store.break_lease("ns1", "carol", "manual")
    assert [event.kind for event in store.events("-")] == ["lease.break"]


def test_threads_racing_for_one_lease_one_wins(store: SqliteStore) -> None:
    contenders = 20
    barrier = threading.Barrier(contenders, timeout=30)
    winners: list[int] = []
    refused: list[int] = []

    def contend(index: int) -> None:
        barrier.wait()
        try:
            store.acquire_lease("ns1", Owner("u", "m", 1000 + index, f"r-{index}"), ttl=60)
            winners.append(index)
        except LeaseHeld:
            refused.append(index)

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(winners) == 1
    assert len(refused) == contenders - 1
    assert store.list_leases()[0].owner.pid == 1000 + winners[0]


# ---------------------------------------------------------------------------- quarantine


def test_quarantine_upsert_list_and_clear(store: SqliteStore, clock: FakeClock) -> None:
    store.quarantine("ns2", "r-1", "mdadm failed twice")
    store.quarantine("ns1", "r-1", "reboot task failed")
    clock.advance(10)
    store.quarantine("ns2", "r-2", "still failing")
    entries = store.quarantined()
    assert [(e.host, e.run_id, e.reason) for e in entries] == [
        ("ns1", "r-1", "reboot task failed"),
        ("ns2", "r-2", "still failing"),
    ]
    assert entries[1].at == T0 + timedelta(seconds=10)
    assert_utc(entries[0].at)
    assert store.clear_quarantine("ns2", "carol") is True
    assert [e.host for e in store.quarantined()] == ["ns1"]
    (audit,) = store.events("-")
    assert (audit.kind, audit.host) == ("quarantine.clear", "ns2")
    assert audit.data == {"who": "carol", "run_id": "r-2", "reason": "still failing"}
    assert store.clear_quarantine("ns2", "carol") is False
    assert len(store.events("-")) == 1


# --------------------------------------------------------------------------------- halt


def test_halt_set_seen_elsewhere_and_cleared(
    store: SqliteStore, other: SqliteStore, clock: FakeClock
) -> None:
    assert store.halt_state() is None
    store.set_halt("carol", "bad kernel on canary")
    state = other.halt_state()
    assert state is not None
    assert (state.who, state.reason, state.at) == ("carol", "bad kernel on canary", T0)
    assert_utc(state.at)
    clock.advance(5)
    store.set_halt("dave", "second thoughts")
    assert other.halt_state() == HaltState("dave", "second thoughts", T0 + timedelta(seconds=5))
    assert other.clear_halt("erin") is True
    assert store.halt_state() is None
    assert other.clear_halt("erin") is False
    kinds = [(event.kind, event.data["who"]) for event in store.events("-")]
    assert kinds == [("halt.set", "carol"), ("halt.set", "dave"), ("halt.clear", "erin")]


# ----------------------------------------------------------------------------- host keys


def test_pin_and_read_keys(store: SqliteStore, db_path: Path, clock: FakeClock) -> None:
    assert store.pinned_key("ns1", "installed") is None
    store.pin_key("ns1", "installed", "ssh-ed25519", "AAAA1")
    store.pin_key("ns1", "rescue", "ssh-rsa", "BBBB1")
    assert store.pinned_key("ns1", "installed") == ("ssh-ed25519", "AAAA1")
    assert store.pinned_key("ns1", "rescue") == ("ssh-rsa", "BBBB1")
    assert store.pinned_key("ns2", "installed") is None

    def pinned_at() -> object:
        sql = "SELECT pinned_at FROM host_keys WHERE host = 'ns1' AND role = 'installed'"
        return raw(db_path, sql)[0][0]

    clock.advance(60)
    store.pin_key("ns1", "installed", "ssh-ed25519", "AAAA1")
    assert pinned_at() == "2024-02-29T23:59:00.000+00:00"  # same key: first pin kept
    store.pin_key("ns1", "installed", "ssh-ed25519", "AAAA2")
    assert store.pinned_key("ns1", "installed") == ("ssh-ed25519", "AAAA2")
    assert pinned_at() == "2024-03-01T00:00:00.000+00:00"


# -------------------------------------------------------------------------------- close


def test_close_closes_every_thread_connection(db_path: Path) -> None:
    opened = SqliteStore(db_path)
    ready = threading.Event()
    finish = threading.Event()

    def reader() -> None:
        opened.halt_state()
        ready.set()
        finish.wait(timeout=30)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert ready.wait(timeout=30)
        opened.close()
        # with every connection closed, the WAL is checkpointed and removed
        assert not db_path.with_name(db_path.name + "-wal").exists()
        with pytest.raises(StoreError):
            opened.halt_state()
    finally:
        finish.set()
        thread.join(timeout=30)


# ------------------------------------------------------------------------ several processes

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from fleet.errors import LeaseHeld
    from fleet.store.base import Owner
    from fleet.store.sqlite import SqliteStore

    db, log, go, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    store = SqliteStore(db)
    owner = Owner("worker", "here", os.getpid(), f"r-{os.getpid()}")
    Path(f"{go}.{os.getpid()}").touch()  # ready: the store is open
    deadline = time.monotonic() + 45
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(2)
        time.sleep(0.005)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    done = refused = 0
    while done < rounds:
        if time.monotonic() > deadline:
            sys.exit(3)
        try:
            lease = store.acquire_lease("ns1", owner, ttl=60)
        except LeaseHeld:
            refused += 1
            time.sleep(0.001)
            continue
        os.write(fd, f"start {lease.token} {os.getpid()} {time.monotonic_ns()}\\n".encode())
        time.sleep(0.002)
        os.write(fd, f"end {lease.token} {os.getpid()} {time.monotonic_ns()}\\n".encode())
        store.release_lease(lease)
        done += 1
        time.sleep(0.002)  # give the others a chance, so that holders alternate
    os.close(fd)
    store.close()
    print(refused)
    """
)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()


def test_lease_excludes_across_processes(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    workers, rounds = 4, 8
    db, log, go = tmp_path / "shared" / "fleet.db", tmp_path / "holds.log", tmp_path / "go"
    log.touch()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for index in range(workers):
        err = (tmp_path / f"worker{index}.err").open("wb")
        args = [sys.executable, "-c", WORKER, str(db), str(log), str(go), str(rounds)]
        processes.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env))
        err.close()
    deadline = time.monotonic() + 60  # the workers create the file together, then all race
    while len(list(tmp_path.glob("go.*"))) < workers and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in processes):
            break  # a worker died: its exit code and stderr are reported below
        time.sleep(0.01)
    go.touch()
    outputs = [proc.communicate(timeout=90)[0] for proc in processes]
    codes = [proc.returncode for proc in processes]
    errors = [(tmp_path / f"worker{i}.err").read_text() for i in range(workers)]
    assert codes == [0] * workers, errors

    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) == 2 * workers * rounds
    holds = []
    for begin, end in zip(lines[::2], lines[1::2], strict=True):
        assert (begin[0], end[0]) == ("start", "end")
        assert (begin[1], begin[2]) == (end[1], end[2])  # same token, same process
        holds.append((int(begin[3]), int(end[3]), int(begin[1])))
    holds.sort()
    for (_, prev_end, prev_token), (start, _, token) in itertools.pairwise(holds):
        assert start > prev_end, "two processes held the lease at once"
        assert token > prev_token
    assert len({line[2] for line in lines}) == workers
    assert sum(int(out) for out in outputs) > 0, "the workers never contended for the lease"


def test_processes_see_each_others_events(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    code = (
        "import sys; from datetime import datetime, UTC;"
        " from fleet.store.sqlite import SqliteStore; from fleet.store.base import Event;"
        " s = SqliteStore(sys.argv[1]);"
        " [s.record(Event('r-p', 'step.start', datetime.now(UTC), host='ns1')) for _ in range(50)];"
        " s.close()"
    )
    parent = SqliteStore(db)
    try:
        subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)
        assert len(parent.events("r-p")) == 50
    finally:
        parent.close()
