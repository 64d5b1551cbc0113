"""What only the SQLite store does: one WAL file in a directory it creates, per-thread
connections closed together, the URL forms, and files from older fleets upgraded in place."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fleet.errors import ConfigError, StoreError
from fleet.store import migrate_store, migrations, open_store
from fleet.store.base import Owner, Store
from fleet.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.integration.store.backends import make_run

#: What a file of schema version 2 (before the run's lease, the arrays and the audit) still needs.
AFTER_2 = tuple(m.name for m in migrations.migrations("sqlite")[2:])
AUDIT = next(name for name in AFTER_2 if name.endswith("_audit"))

pytestmark = pytest.mark.integration


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fleet.db"


def test_first_open_creates_dir_schema_and_wal(db_path: Path) -> None:
    SqliteStore(db_path).close()
    assert db_path.parent.is_dir()
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    tables = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    expected = {"runs", "events", "leases", "lease_tokens", "quarantine", "halt", "host_keys"}
    assert expected | {"schedules", "schedule_fires", "audit", "schema_migrations"} <= tables


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
    opened: Store = open_store(specs[form])
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


# ----------------------------------------------------------------- files of older fleets


def old_file(path: Path, version: int) -> None:
    """A store file as fleet wrote it at schema ``version``: its migrations, then some data
    (a run, a host lease held for it, a lease break journaled the way it was then; from
    version 4 on, an array fleet created)."""
    conn = sqlite3.connect(path)
    for migration in migrations.migrations("sqlite")[:version]:
        conn.executescript(migration.sql)
    conn.execute(
        "INSERT INTO runs (id, plan_name, plan_source, plan_hash, hosts, options, owner_user,"
        " owner_machine, owner_pid, owner_run_id, state, reason, created_at, updated_at)"
        " VALUES ('r1', 'p', 'adhoc', 'h', '[\"a\",\"b\"]', '{}', 'u', 'm', 1, 'r1', 'done',"
        " NULL, '2026-01-01T00:00:00.000+00:00', '2026-01-01T00:00:00.000+00:00')"
    )
    conn.execute(
        "INSERT INTO leases (host, owner_user, owner_machine, owner_pid, owner_run_id, token,"
        " taken_at, expires_at) VALUES ('a', 'u', 'm', 1, 'r1', 5,"
        " '2026-01-01T00:00:00.000+00:00', '2026-01-01T00:05:00.000+00:00')"
    )
    conn.execute("UPDATE lease_tokens SET last = 5")  # as that lease's grant left it
    if version >= 4:
        conn.execute(
            "INSERT INTO owned_arrays VALUES ('a', 'u:u', 'fleet-1:md4', 'raid1', '[\"S1\"]',"
            " 'r1', '', '2026-01-01T00:00:00.000+00:00')"
        )
    conn.execute(
        "INSERT INTO events (run_id, kind, at, host, data) VALUES"
        " ('r1', 'lease.break', '2026-01-02T00:00:00.000+00:00', 'ns1',"
        ' \'{"who":"carol@box pid 9","reason":"stuck"}\'),'
        " ('r1', 'step.end', '2026-01-02T00:00:01.000+00:00', 'ns1', NULL)"
    )
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_a_file_of_an_older_fleet_is_upgraded_in_place_when_opened(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.db"
    old_file(path, version)
    store = SqliteStore(path)
    try:
        old = store.get_run("r1")
        assert old.state == "done" and old.lease is None and old.owner == Owner("u", "m", 1, "r1")
        (lease,) = store.list_leases()
        assert (lease.host, lease.owner, lease.token) == ("a", old.owner, 5)
        arrays = [(a.host, a.uuid, a.serials) for a in store.owned_arrays()]
        assert arrays == ([("a", "u:u", ("S1",))] if version >= 4 else [])
        assert store.get_preview("p-1") is None  # the previews' table exists (from version 4)
        assert [e.kind for e in store.events("r1")] == ["lease.break", "step.end"]
        trail = store.audit_trail()
        assert [(e.action, e.actor.operator, e.run_id) for e in trail] == [
            ("run.start", "u", "r1"),
            ("lease.break", "carol@box pid 9", "r1"),
        ]
        assert trail[0].detail == {"plan": "p", "hosts": 2}
        assert store.list_schedules() == []
    finally:
        store.close()
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    applied = [name for (name,) in raw(path, "SELECT name FROM schema_migrations")]
    assert applied == [m.name for m in migrations.migrations("sqlite")[version:]]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_run_of_an_older_file_is_taken_over_with_its_host_leases(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.db"
    old_file(path, version)
    store = SqliteStore(path)
    try:
        new = Owner("alice", "laptop", 102, "r1", 2000.5, "bbbb")
        lease = store.claim_run("r1", new, 60, replacing=None, why="its owner is gone")
        (host,) = store.list_leases()
        assert host.owner == new and host.token > 5 and lease.token > 5
        takeover = store.events("r1")[-1]
        assert takeover.kind == "run.takeover" and takeover.data["from"] == "u@m pid 1 run r1"
        assert takeover.data["hosts"] == ["a"]
        assert store.audit_trail()[-1].action == "run.takeover"
    finally:
        store.close()


def test_store_migrate_upgrades_an_older_file_and_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_file(path, 2)
    assert migrate_store(path, dry_run=True).applied == AFTER_2
    assert raw(path, "PRAGMA user_version") == [(2,)]  # a dry run changes nothing
    outcome = migrate_store(path)
    assert (outcome.before, outcome.after, outcome.applied) == (2, SCHEMA_VERSION, AFTER_2)
    assert migrate_store(path).applied == ()


def test_a_failing_migration_leaves_the_file_at_the_version_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_file(path, 2)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE audit (x TEXT)")  # in the way of the audit's CREATE INDEX
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"cannot apply schema migration {AUDIT}"):
        SqliteStore(path)
    # the migrations before the audit's were applied, each in its own transaction
    before = next(m.version for m in migrations.migrations("sqlite") if m.name == AUDIT) - 1
    assert raw(path, "PRAGMA user_version") == [(before,)]
    applied = [name for (name,) in raw(path, "SELECT name FROM schema_migrations")]
    assert applied == [m.name for m in migrations.migrations("sqlite")[2:before]]
