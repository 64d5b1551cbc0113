"""The store backends under test, each behind one small interface, for the conformance suite.

Every test of ``tests/integration/store/test_*.py`` that takes the ``store`` fixture runs once
per backend: SQLite on a fresh file, PostgreSQL on a fresh schema of the session's real server.
A backend opens as many store objects on the same state as a test wants (``open``): a second
object stands for a second operator's process. ``raw`` reads the tables without the store.

The test clock (:class:`SyncedClock`) is the store's clock on both: SQLite takes it as its
injected clock; on PostgreSQL, where the server's ``now()`` decides, it writes each instant it
moves to into the table the schema's test ``now()`` reads (see ``tests/pgserver.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import psycopg

from fleet.clock import FakeClock
from fleet.store import migrate_store, open_store
from fleet.store.base import Actor, Owner, RunRecord, Store
from tests.pgserver import PgServer

T0 = datetime(2024, 2, 29, 23, 59, 0, tzinfo=UTC)
ALICE = Owner("alice", "laptop", 101, "r-1")
BOB = Owner("bob", "desk", 202, "r-2")


class SyncedClock(FakeClock):
    """A :class:`~fleet.clock.FakeClock` (moved with ``advance(seconds)`` or ``set``) that also
    moves the database's clock, where the database keeps one."""

    def __init__(self, start: datetime, sync: Callable[[datetime], None] | None) -> None:
        super().__init__(start)
        self._sync = sync
        if sync:
            sync(start)

    def advance(self, delta: timedelta | float) -> None:  # type: ignore[override]
        super().advance(delta if isinstance(delta, timedelta) else timedelta(seconds=delta))

    def _advance(self, delta: timedelta) -> None:
        super()._advance(delta)
        if self._sync and delta:
            self._sync(self._now)


class Backend(Protocol):
    name: str
    url: str  # what `--store` takes
    password_file: Path | None

    def open(self, *, clock: FakeClock | None = None, actor: Actor | None = None) -> Store: ...
    def raw(self, sql: str) -> list[tuple[Any, ...]]: ...
    def set_schema_version(self, version: int) -> None: ...
    def clock(self, start: datetime = T0) -> SyncedClock: ...
    def close(self) -> None: ...


class SqliteBackend:
    name = "sqlite"
    password_file = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = str(path)

    def open(self, *, clock: FakeClock | None = None, actor: Actor | None = None) -> Store:
        return open_store(self.path, clock=clock, actor=actor)

    def raw(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def set_schema_version(self, version: int) -> None:
        conn = sqlite3.connect(self.path)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()

    def clock(self, start: datetime = T0) -> SyncedClock:
        return SyncedClock(start, None)

    def close(self) -> None:
        return None


class PostgresBackend:
    name = "postgresql"

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.url = server.schema(clock=True)
        self.password_file: Path | None = server.password_file
        migrate_store(self.url, password_file=self.password_file)
        self._clock_conn: psycopg.Connection[Any] | None = None

    def open(self, *, clock: FakeClock | None = None, actor: Actor | None = None) -> Store:
        return open_store(self.url, clock=clock, actor=actor, password_file=self.password_file)

    def connect(self) -> psycopg.Connection[Any]:
        assert self.password_file is not None
        password = self.password_file.read_text().strip()
        return psycopg.connect(self.url, password=password, autocommit=True)

    def raw(self, sql: str) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(sql.encode()).fetchall()

    def set_schema_version(self, version: int) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, 'test', now(), 'test')", (version,)
            )

    def clock(self, start: datetime = T0) -> SyncedClock:
        return SyncedClock(start, self._set_clock)

    def _set_clock(self, at: datetime) -> None:
        if self._clock_conn is None:
            self._clock_conn = self.connect()
        clock_schema = self.url.split("%3D")[1].split(",")[1]
        self._clock_conn.execute(f'UPDATE "{clock_schema}".fake SET at = %s'.encode(), (at,))

    def close(self) -> None:
        if self._clock_conn is not None:
            self._clock_conn.close()


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


def assert_utc(at: datetime | None) -> None:
    assert at is not None
    assert at.tzinfo is not None
    assert at.utcoffset() == timedelta(0)
