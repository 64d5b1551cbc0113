"""The PostgreSQL store's plumbing: a connection pool, transactions, the schema, the audit trail.

* One :class:`psycopg_pool.ConnectionPool` per store, connections in autocommit: a single
  statement commits alone, a read-modify-write runs in ``conn.transaction()`` and locks the rows
  it reads (``FOR UPDATE``) or writes with one conditional statement.
* Every instant the store decides (a lease's grant and expiry, a halt, an audit row) is the
  server's ``now()``: operators' machines may disagree on the time, the database is the one clock
  they share. Instants a caller gives (an event's time) are cut to the millisecond, as SQLite's.
* The schema is created and upgraded only by ``fleet store migrate`` (:meth:`migrate`): opening
  a store whose schema is older or newer than this fleet's is refused with what to do, so that
  one operator's upgrade never changes the tables under a teammate's running rollout.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from fleet.errors import StoreError
from fleet.store import migrations
from fleet.store.base import Actor, AuditEntry
from fleet.store.postgresql import conninfo
from fleet.store.postgresql.notify import Listener
from fleet.store.rows import (
    AUDIT_INSERT_COLUMNS,
    EVENT_INSERT_COLUMNS,
    NATIVE_CODEC,
    actor_params,
    audit_from_row,
    audit_query,
    dumps,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    from fleet.clock import Clock

#: Connections a store keeps at most: a rollout's host threads share them for the journal.
POOL_SIZE = 10
#: Seconds a thread waits for a free connection before failing.
POOL_WAIT = 30.0
#: Notified by a trigger on every change of the halt table (see the migrations).
HALT_CHANNEL = "fleet_halt"
#: Held while a migration runs, so that two operators migrating at once apply each file once.
_MIGRATION_LOCK = 0x666C656574  # "fleet"

INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 11)}) RETURNING seq"
)
_INSERT_AUDIT = (
    f"INSERT INTO audit ({AUDIT_INSERT_COLUMNS})"
    f" VALUES (now(), %s, %s, %s, %s, %s, %s, %s, %s::json)"
)
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
    " name text NOT NULL, applied_at timestamptz(3) NOT NULL, applied_by text NOT NULL)"
)


def one_line(exc: BaseException) -> str:
    """A driver error as one line (libpq's messages span several)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


class PgCore:
    """The pool, transactions and schema of one PostgreSQL database; the audit trail."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        actor: Actor | None = None,
        password_file: str | Path | None = None,
        check_schema: bool = True,
    ) -> None:
        # ``clock`` is accepted for the common signature: the server's clock decides here.
        del clock
        self.info = conninfo.parse(url, password_file)
        self.where = self.info.where
        self.actor = actor or Actor.current()
        self._halts = Listener(self.info, HALT_CHANNEL)
        if check_schema:
            migrations.check_version(
                "postgresql", self.schema_version(), self.where, upgrade_on_open=False
            )
        # opened on first use: `fleet store migrate` and the schema check need none of it
        self._pool = ConnectionPool(
            self.info.conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=POOL_SIZE,
            timeout=POOL_WAIT,
            name="fleet-store",
            open=False,
        )
        self._pool_lock = threading.Lock()
        self._pool_state = "new"  # then "open", then "closed"

    # ----------------------------------------------------------------- connections

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not from the pool), in autocommit."""
        try:
            return psycopg.connect(self.info.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"{self.where}: cannot connect: {one_line(exc)}",
                hint="check the store URL, the server, and the password source "
                "(store_password_file, ~/.pgpass or PGPASSWORD)",
            ) from exc

    def close(self) -> None:
        """Close the pool's connections and the halt listener."""
        self._halts.close()
        with self._pool_lock:
            self._pool_state = "closed"
            self._pool.close()

    def _opened_pool(self) -> ConnectionPool:
        with self._pool_lock:
            if self._pool_state == "closed":
                raise StoreError(f"{self.where}: the store is closed")
            if self._pool_state == "new":
                try:
                    self._pool.open(wait=True, timeout=conninfo.CONNECT_TIMEOUT + 5)
                except PoolTimeout as exc:
                    raise StoreError(f"{self.where}: cannot connect: {exc}") from exc
                self._pool_state = "open"
        return self._pool

    @contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction; rolled back when the block raises."""
        try:
            pool = self._opened_pool()
            with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot {what}: {one_line(exc)}") from exc
        except PoolTimeout as exc:
            raise StoreError(f"{self.where}: cannot {what}: no free connection: {exc}") from exc

    def _write(self, what: str, sql: str, params: tuple[Any, ...]) -> int:
        """One statement in autocommit; returns the number of rows changed."""
        with self._transaction(what) as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._transaction(what) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    # ---------------------------------------------------------------------- schema

    def schema_version(self) -> int:
        """The database's schema version (0 when fleet never migrated it)."""
        with self.connect() as conn:
            try:
                return _version(conn)
            except psycopg.Error as exc:
                raise StoreError(
                    f"{self.where}: cannot read the schema version: {one_line(exc)}"
                ) from exc

    def migrate(self, *, dry_run: bool = False) -> migrations.Outcome:
        """Apply every pending migration, each in its own transaction, under an advisory lock
        (two operators migrating at once apply each file once); refuse a newer schema."""
        with self.connect() as conn:
            try:
                return self._migrate(conn, dry_run)
            except psycopg.Error as exc:
                raise StoreError(f"{self.where}: cannot migrate: {one_line(exc)}") from exc

    def _migrate(self, conn: psycopg.Connection[Any], dry_run: bool) -> migrations.Outcome:
        # A session lock, taken before the transactions that read the version: a transaction
        # begun before another operator's commit could miss the tables it created.
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            before = _version(conn)
            migrations.check_version("postgresql", before, self.where, upgrade_on_open=True)
            todo = migrations.pending("postgresql", before)
            if dry_run:
                return migrations.Outcome(self.where, before, before, tuple(m.name for m in todo))
            for migration in todo:
                with conn.transaction():
                    conn.execute(_MIGRATIONS_TABLE)
                    conn.execute(migration.sql.encode())  # several statements: no parameters
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, now(), %s)",
                        (migration.version, migration.name, str(self.actor)),
                    )
            applied = tuple(m.name for m in todo)
            return migrations.Outcome(self.where, before, _version(conn), applied)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    # ----------------------------------------------------------------------- audit

    def _audit(
        self,
        cur: psycopg.Cursor[Any],
        kind: str,
        run_id: str,
        host: str | None,
        data: dict[str, Any],
    ) -> None:
        """Journal an operator's action inside the transaction that performs it, and add it to
        the audit trail with this store's actor."""
        detail = dumps(data, kind)
        cur.execute(
            f"INSERT INTO events ({EVENT_INSERT_COLUMNS}) VALUES"
            f" (%s, %s, now(), %s, NULL, NULL, NULL, NULL, NULL, NULL, %s::json)",
            (run_id, kind, host, detail),
        )
        self._audit_row(cur, kind, None if run_id == "-" else run_id, host, detail)

    def _audit_row(
        self,
        cur: psycopg.Cursor[Any],
        action: str,
        run_id: str | None,
        host: str | None,
        detail: str | None,
    ) -> None:
        cur.execute(_INSERT_AUDIT, (action, *actor_params(self.actor), run_id, host, detail))

    def audit(
        self,
        action: str,
        *,
        run_id: str | None = None,
        host: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        text = dumps(detail, action) if detail else None
        with self._transaction(f"audit {action}") as cur:
            self._audit_row(cur, action, run_id, host, text)

    def audit_trail(
        self, *, since: datetime | None = None, who: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        sql, params = audit_query(since, who, limit, "%s")
        rows = self._read("read the audit trail", sql, params)
        return [audit_from_row(row, NATIVE_CODEC) for row in rows]


def _version(conn: psycopg.Connection[Any]) -> int:
    found = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = conn.execute("SELECT COALESCE(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0
