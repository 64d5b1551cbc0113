"""The SQLite store's plumbing: transactions, group commits (fenced:
:mod:`fleet.store.sqlite.fencing`), the schema and the audit trail.

* WAL mode lets readers (``fleet status``, ``halt_state`` before every host) run while one
  writer appends to the journal; ``synchronous=NORMAL`` makes a commit a write to the WAL
  without an fsync, which is what keeps thousands of journal appends per second cheap. A
  power loss may drop the last commits but never corrupts the file.
* Threads share one writer connection and a few readers (:mod:`fleet.store.sqlite.connections`).
  Writers inside one process queue on a :class:`threading.Lock` instead of SQLite's busy
  handler, whose sleeps (1, 2, 5 ... 100 ms) would make 50 writer threads crawl. Between
  processes (two operators, two runs on one machine) SQLite's own file locks and
  ``busy_timeout`` arbitrate.
* Every read-modify-write (leases, audited changes) runs in one ``BEGIN IMMEDIATE``
  transaction, so it takes the write lock before it reads and cannot lose a race.
* Instants are stored as UTC ISO-8601 text (:func:`fleet.clock.utc_iso`) and come back
  timezone-aware; lease expiry is judged on the injected :class:`~fleet.clock.Clock`.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.clock import SystemClock, utc_iso
from fleet.errors import ConfigError, LeaseLost, StoreError
from fleet.store import migrations
from fleet.store.base import Actor, AuditEntry, Fence
from fleet.store.rows import (
    AUDIT_INSERT_COLUMNS,
    EVENT_INSERT_COLUMNS,
    TEXT_CODEC,
    actor_params,
    audit_from_row,
    audit_query,
    dumps,
)
from fleet.store.sqlite.connections import Connections
from fleet.store.sqlite.fencing import Item, insert_batch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from fleet.clock import Clock

INSERT_EVENT = f"INSERT INTO events ({EVENT_INSERT_COLUMNS}) VALUES ({', '.join('?' * 11)})"
_INSERT_AUDIT = f"INSERT INTO audit ({AUDIT_INSERT_COLUMNS}) VALUES ({', '.join('?' * 9)})"
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TEXT NOT NULL, applied_by TEXT NOT NULL)"
)


class _EventBatch:
    """Event rows (with their fences) waiting for a group commit, by ticket; then each
    ticket's outcome: its seq, or the :class:`LeaseLost` that refused it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._next = 1
        self._outcomes: dict[int, int | LeaseLost] = {}

    def add(self, row: tuple[Any, ...], fence: Fence | None) -> int:
        with self._lock:
            ticket = self._next
            self._next += 1
            self._items.append((ticket, row, fence))
            return ticket

    def take(self) -> list[Item]:
        with self._lock:
            items, self._items = self._items, []
            return items

    def give_back(self, items: list[Item]) -> None:
        with self._lock:
            self._items = items + self._items

    def committed(self, outcomes: dict[int, int | LeaseLost]) -> None:
        with self._lock:
            self._outcomes.update(outcomes)

    def outcome_of(self, ticket: int) -> int | LeaseLost | None:
        with self._lock:
            return self._outcomes.pop(ticket, None)


class SqliteCore:
    """Connections, transactions and the schema of one SQLite file; the audit trail."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        actor: Actor | None = None,
        upgrade: bool = True,
    ) -> None:
        self.path = Path(path).expanduser()
        self.where = str(self.path)  # for messages
        if str(path) == ":memory:":
            raise ConfigError(
                "the SQLite store needs a file: its connections (a writer, readers) each open it"
            )
        self._clock: Clock = clock or SystemClock()
        self.actor = actor or Actor.current()
        self._connections = Connections(self.path)
        self._in_transaction = threading.local()  # this thread's reads then use the writer
        self._write_lock = threading.Lock()
        self._batch = _EventBatch()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store's directory: {exc}") from exc
        if upgrade:
            self.migrate()

    # ----------------------------------------------------------------- connections

    def close(self) -> None:
        """Close every connection this store opened, whichever thread uses it."""
        self._connections.close()

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is read."""
        with self._write_lock:
            conn = self._connections.writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc
            self._in_transaction.active = True
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc
                raise
            finally:
                self._in_transaction.active = False

    def _write(self, what: str, sql: str, params: tuple[Any, ...]) -> int:
        """One statement in autocommit; returns the number of rows changed."""
        try:
            with self._write_lock:
                return self._connections.writer().execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            if getattr(self._in_transaction, "active", False):  # sees the transaction's writes
                return self._connections.writer().execute(sql, params).fetchall()
            with self._connections.reader() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    def _now(self) -> str:
        return utc_iso(self._clock.now())

    def _group_commit(self, params: tuple[Any, ...], fence: Fence | None) -> int:
        """Insert one event row, committed together with whatever other threads queued
        meanwhile: one transaction for many rows, yet each call returns only once its own row
        is committed (the journal's before/after guarantee holds). Returns the row's seq, or
        raises :class:`LeaseLost` when its fence was stale (checked in that transaction)."""
        ticket = self._batch.add(params, fence)
        with self._write_lock:
            outcome = self._batch.outcome_of(ticket)
            if outcome is None:  # not committed by another thread with its own: commit the batch
                items = self._batch.take()
                conn = self._connections.writer()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    outcomes = insert_batch(conn, items)
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._batch.give_back(items)  # the next writer retries them
                    if isinstance(exc, sqlite3.Error):
                        raise StoreError(f"{self.path}: cannot record an event: {exc}") from exc
                    raise
                self._batch.committed(outcomes)
                outcome = self._batch.outcome_of(ticket)
        if isinstance(outcome, LeaseLost):
            raise outcome
        assert isinstance(outcome, int)
        return outcome

    # ---------------------------------------------------------------------- schema

    def schema_version(self) -> int:
        """The file's schema version (0 for a new file)."""
        (version,) = self._read("read the schema version", "PRAGMA user_version")[0]
        return int(version)

    def migrate(self, *, dry_run: bool = False) -> migrations.Outcome:
        """Bring the file to this fleet's schema, one migration per transaction; refuse a file
        written by a newer fleet. ``PRAGMA user_version`` keeps the version, as older fleets
        read it to refuse a newer file."""
        before = self.schema_version()
        migrations.check_version("sqlite", before, str(self.path), upgrade_on_open=True)
        todo = migrations.pending("sqlite", before)
        if dry_run:
            return migrations.Outcome(str(self.path), before, before, tuple(m.name for m in todo))
        applied = []
        for migration in todo:
            with self._transaction(f"apply schema migration {migration.name}") as conn:
                (now_at,) = conn.execute("PRAGMA user_version").fetchone()
                if now_at >= migration.version:  # another process applied it meanwhile
                    continue
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(_MIGRATIONS_TABLE)
                conn.execute(
                    "INSERT OR REPLACE INTO schema_migrations VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, self._now(), str(self.actor)),
                )
                conn.execute(f"PRAGMA user_version = {migration.version}")
            applied.append(migration.name)
        return migrations.Outcome(str(self.path), before, self.schema_version(), tuple(applied))

    # ----------------------------------------------------------------------- audit

    def _audit(
        self,
        conn: sqlite3.Connection,
        kind: str,
        run_id: str,
        host: str | None,
        data: dict[str, Any],
    ) -> None:
        """Journal an operator's action inside the transaction that performs it, and add it to
        the audit trail with this store's actor."""
        now, detail = self._now(), dumps(data, kind)
        conn.execute(INSERT_EVENT, (run_id, kind, now, host, *[None] * 6, detail))
        self._audit_row(conn, kind, None if run_id == "-" else run_id, host, detail, now)

    def _audit_row(
        self,
        conn: sqlite3.Connection,
        action: str,
        run_id: str | None,
        host: str | None,
        detail: str | None,
        at: str,
    ) -> None:
        params = (at, action, *actor_params(self.actor), run_id, host, detail)
        conn.execute(_INSERT_AUDIT, params)

    def audit(
        self,
        action: str,
        *,
        run_id: str | None = None,
        host: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        text = dumps(detail, action) if detail else None
        with self._transaction(f"audit {action}") as conn:
            self._audit_row(conn, action, run_id, host, text, self._now())

    def audit_trail(
        self, *, since: datetime | None = None, who: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        sql, params = audit_query(utc_iso(since) if since else None, who, limit, "?")
        rows = self._read("read the audit trail", sql, params)
        return [audit_from_row(row, TEXT_CODEC) for row in rows]


def _statements(script: str) -> list[str]:
    """The statements of a migration file, split where SQLite sees a complete statement."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in pending.splitlines()
    ):
        raise StoreError(f"an incomplete statement ends a migration: {pending.strip()[:80]!r}")
    return statements
