"""What only the SQLite store does: one WAL file in a directory it creates, per-thread
connections closed together, the URL forms, and files from older fleets upgraded in place."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fleet.errors import ConfigError, StoreError
from fleet.store import migrate_store, migrations, open_store
from fleet.store.base import Store
from fleet.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.integration.store.backends import make_run

#: What a file of schema version 2 (the last before the audit trail) still needs.
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
    (a run, a halt and a lease break journaled the way it was then)."""
    conn = sqlite3.connect(path)
    for migration in migrations.migrations("sqlite")[:version]:
        conn.executescript(migration.sql)
    conn.execute(
        "INSERT INTO runs VALUES ('r1', 'p', 'adhoc', 'h', '[\"a\",\"b\"]', '{}', 'u', 'm', 1,"
        " NULL, 'done', NULL, '2026-01-01T00:00:00.000+00:00', '2026-01-01T00:00:00.000+00:00')"
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


@pytest.mark.parametrize("version", [1, 2])
def test_a_file_of_an_older_fleet_is_upgraded_in_place_when_opened(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.db"
    old_file(path, version)
    store = SqliteStore(path)
    try:
        assert store.get_run("r1").state == "done"
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
    conn.execute("CREATE TABLE audit (x TEXT)")  # in the way of 0003's CREATE INDEX
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"cannot apply schema migration {AUDIT}"):
        SqliteStore(path)
    assert raw(path, "PRAGMA user_version") == [(2,)]
    assert raw(path, "SELECT name FROM sqlite_master WHERE name = 'schema_migrations'") == []
