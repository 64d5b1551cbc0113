"""The default state store: one SQLite file in WAL mode.

Why SQLite and how it is used:

* WAL mode lets readers (``fleet status``, ``halt_state`` before every host) run while one
  writer appends to the journal; ``synchronous=NORMAL`` makes a commit a write to the WAL
  without an fsync, which is what keeps thousands of journal appends per second cheap. A
  power loss may drop the last commits but never corrupts the file.
* Every thread gets its own connection (``threading.local``); connections are never shared.
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

import json
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.clock import SystemClock, parse_utc, utc_iso
from fleet.errors import ConfigError, LeaseLost, StoreError
from fleet.store import disk_records
from fleet.store import sqlite_leases as leases
from fleet.store.base import (
    MISSED_POLICIES,
    RUN_STATES,
    Event,
    Fence,
    HaltState,
    Lease,
    OwnedArray,
    Owner,
    PinnedKey,
    Preview,
    QuarantineEntry,
    RunLease,
    RunRecord,
    ScheduleFire,
    ScheduleRecord,
)
from fleet.store.sqlite_leases import LEASE_COLUMNS, OWNER_COLUMNS, owner_from, owner_params

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from fleet.clock import Clock

#: Bumped on every schema change; a newer file is refused rather than misread.
#: Version 2 added the schedules and their fires, version 3 the run's lease and the owners'
#: process identity, 4 the arrays fleet created and the previews (see :data:`_MIGRATIONS`).
SCHEMA_VERSION = 4

#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    plan_name TEXT NOT NULL,
    plan_source TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    hosts TEXT NOT NULL,
    options TEXT NOT NULL,
    owner_user TEXT NOT NULL,
    owner_machine TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_run_id TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    host TEXT,
    stage TEXT,
    step TEXT,
    outcome TEXT,
    exit_code INTEGER,
    excerpt TEXT,
    query_id TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id);
CREATE TABLE IF NOT EXISTS leases (
    host TEXT PRIMARY KEY,
    owner_user TEXT NOT NULL,
    owner_machine TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_run_id TEXT,
    token INTEGER NOT NULL,
    taken_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT OR IGNORE INTO lease_tokens (id, last) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS quarantine (
    host TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS halt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    who TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS host_keys (
    host TEXT NOT NULL,
    role TEXT NOT NULL,
    key_type TEXT NOT NULL,
    blob TEXT NOT NULL,
    pinned_at TEXT NOT NULL,
    PRIMARY KEY (host, role)
);
"""

#: Schema changes after version 1, by the version they bring the file to; applied in order
#: inside the transaction that opens an older file.
_MIGRATIONS: dict[int, str] = {
    2: """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    cron TEXT NOT NULL,
    tz TEXT NOT NULL,
    args TEXT NOT NULL,
    missed TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    since TEXT NOT NULL,
    expires_at TEXT
);
CREATE TABLE IF NOT EXISTS schedule_fires (
    schedule TEXT NOT NULL,
    due_at TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    by TEXT NOT NULL,
    outcome TEXT NOT NULL,
    run_id TEXT,
    detail TEXT,
    PRIMARY KEY (schedule, due_at)
);
""",
    3: """
ALTER TABLE runs ADD COLUMN owner_started REAL;
ALTER TABLE runs ADD COLUMN owner_nonce TEXT;
ALTER TABLE runs ADD COLUMN lease_token INTEGER;
ALTER TABLE runs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE leases ADD COLUMN owner_started REAL;
ALTER TABLE leases ADD COLUMN owner_nonce TEXT;
""",
    4: disk_records.SCHEMA,
}

_INSERT_EVENT = (
    "INSERT INTO events (run_id, kind, at, host, stage, step, outcome, exit_code, excerpt,"
    " query_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: An event row written only when its fence (if any) is current: checked by SQLite itself, row
#: by row, in the batch's one statement. Parameters: the row, then (fenced 0/1, run id, run
#: token, host, host, host token).
_INSERT_FENCED = (
    "INSERT INTO events (run_id, kind, at, host, stage, step, outcome, exit_code, excerpt,"
    " query_id, data) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE ? = 0 OR ("
    "EXISTS (SELECT 1 FROM runs WHERE id = ? AND lease_token = ?"
    " AND lease_expires_at IS NOT NULL)"
    " AND (? IS NULL OR EXISTS (SELECT 1 FROM leases WHERE host = ? AND token = ?)))"
)
_EVENT_COLUMNS = (
    "seq, run_id, kind, at, host, stage, step, outcome, exit_code, excerpt, query_id, data"
)
_RUN_COLUMNS = (
    f"id, plan_name, plan_source, plan_hash, hosts, options, {OWNER_COLUMNS},"
    " state, reason, created_at, updated_at, lease_token, lease_expires_at"
)
_SCHEDULE_COLUMNS = (
    "name, plan, cron, tz, args, missed, paused, created_by, created_at, since, expires_at"
)
#: A schedule with its last recorded due time (the newest fire, whatever its outcome).
_SELECT_SCHEDULES = (
    "SELECT s.name, s.plan, s.cron, s.tz, s.args, s.missed, s.paused, s.created_by,"
    " s.created_at, s.since, s.expires_at,"
    " (SELECT MAX(f.due_at) FROM schedule_fires f WHERE f.schedule = s.name)"
    " FROM schedules s"
)


class _EventBatch:
    """Event rows (with their fences) waiting for a group commit, by ticket; then each
    ticket's outcome: its seq, or the :class:`LeaseLost` that refused it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[int, tuple[Any, ...], Fence | None]] = []
        self._next = 1
        self._outcomes: dict[int, int | LeaseLost] = {}

    def add(self, row: tuple[Any, ...], fence: Fence | None) -> int:
        with self._lock:
            ticket = self._next
            self._next += 1
            self._items.append((ticket, row, fence))
            return ticket

    def take(self) -> list[tuple[int, tuple[Any, ...], Fence | None]]:
        with self._lock:
            items, self._items = self._items, []
            return items

    def give_back(self, items: list[tuple[int, tuple[Any, ...], Fence | None]]) -> None:
        with self._lock:
            self._items = items + self._items

    def committed(self, outcomes: dict[int, int | LeaseLost]) -> None:
        with self._lock:
            self._outcomes.update(outcomes)

    def outcome_of(self, ticket: int) -> int | LeaseLost | None:
        with self._lock:
            return self._outcomes.pop(ticket, None)


class _Slot:
    """Holds one thread's connection; when the thread ends, the slot dies and closes it."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class SqliteStore:
    """The :class:`fleet.store.base.Store` on one SQLite file, safe across threads and processes.

    Do not carry an open store across ``fork``: open one per process.
    """

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = Path(path).expanduser()
        if str(path) == ":memory:":
            raise ConfigError(
                "the SQLite store needs a file: every thread opens its own connection"
            )
        self._clock: Clock = clock or SystemClock()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._batch = _EventBatch()
        self._registry_lock = threading.Lock()
        self._finalizers: list[weakref.finalize[Any, Any]] = []
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store's directory: {exc}") from exc
        self._ensure_schema()

    # ----------------------------------------------------------------- connections

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._open_slot()
        return slot.conn

    def _open_slot(self) -> _Slot:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the SQLite store: {exc}") from exc
        if mode != "wal":
            conn.close()
            raise StoreError(
                f"{self.path}: SQLite refused WAL mode (got {mode!r})",
                hint="put the store on a local filesystem",
            )
        slot = _Slot(conn)
        # check_same_thread=False only so that close() (any thread) or the finalizer (run
        # wherever the ending thread's locals are dropped) may close it; only this thread uses it.
        finalizer = weakref.finalize(slot, conn.close)
        with self._registry_lock:
            self._finalizers = [f for f in self._finalizers if f.alive]
            self._finalizers.append(finalizer)
        self._local.slot = slot
        return slot

    def close(self) -> None:
        """Close every connection this store opened, in every thread."""
        self._closed = True
        with self._registry_lock:
            finalizers, self._finalizers = self._finalizers, []
        for finalizer in finalizers:
            finalizer()
        self._local = threading.local()

    def _ensure_schema(self) -> None:
        """Create the tables on first open; refuse a file written by a newer fleet."""
        with self._transaction("create the schema") as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {version} is newer than this fleet's "
                    f"({SCHEMA_VERSION})",
                    hint="upgrade fleet, or point --store at another file",
                )
            if version < SCHEMA_VERSION:
                scripts = [_SCHEMA] if version < 1 else []
                scripts += [_MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)]
                for script in scripts:
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is read."""
        conn = self._conn()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc
                raise

    def _write(self, what: str, sql: str, params: tuple[Any, ...]) -> int:
        """One statement in autocommit; returns the number of rows changed."""
        conn = self._conn()
        try:
            with self._write_lock:
                return conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    def _now(self) -> str:
        return utc_iso(self._clock.now())

    # ----------------------------------------------------------------------- runs

    def create_run(self, run: RunRecord) -> None:
        """Store a new run; its id must be new."""
        _check_state(run.state)
        created = utc_iso(run.created_at) if run.created_at else self._now()
        updated = utc_iso(run.updated_at) if run.updated_at else created
        params = (
            run.id,
            run.plan_name,
            run.plan_source,
            run.plan_hash,
            _dumps(list(run.hosts), f"run {run.id} hosts"),
            _dumps(run.options, f"run {run.id} options"),
            *owner_params(run.owner),
            run.state,
            run.reason,
            created,
            updated,
            None,  # no lease until a process claims the run
            None,
        )
        try:
            self._write(
                "create a run", f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({_marks(18)})", params
            )
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(f"run {run.id!r} already exists in {self.path}") from exc
            raise

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._read("read a run", f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"no run {run_id!r}; `fleet status` lists runs")
        return _run_from_row(rows[0])

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` newest runs, newest first."""
        rows = self._read(
            "list runs",
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (max(limit, 0),),
        )
        return [_run_from_row(row) for row in rows]

    def set_run_state(
        self, run_id: str, state: str, reason: str | None = None, *, fence: Fence | None = None
    ) -> None:
        _check_state(state)
        with self._transaction("update a run") as conn:
            if fence is not None:
                leases.check_fence(conn, fence)
            changed = conn.execute(
                "UPDATE runs SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, self._now(), run_id),
            ).rowcount
        if not changed:
            raise StoreError(f"no run {run_id!r}; `fleet status` lists runs")

    # -------------------------------------------------------------- the run's owner

    def claim_run(
        self, run_id: str, owner: Owner, ttl: float, *, replacing: int | None, why: str
    ) -> RunLease:
        leases.check_ttl(ttl)
        with self._transaction(f"claim run {run_id}") as conn:
            now = leases.to_ms(self._clock.now())
            lease, previous, reissued = leases.claim(conn, run_id, owner, now, ttl, replacing)
            if previous is not None:
                data = {"from": str(previous), "to": str(owner), "why": why, "hosts": reissued}
                self._audit(conn, "run.takeover", run_id, None, {**data, "token": lease.token})
            return lease

    def renew_run(self, lease: RunLease, ttl: float) -> RunLease:
        leases.check_ttl(ttl)
        with self._transaction(f"renew the lease of run {lease.run_id}") as conn:
            return leases.renew_run(conn, lease, self._clock.now(), ttl)

    def release_run(self, lease: RunLease) -> None:
        self._write(
            f"release run {lease.run_id}",
            "UPDATE runs SET lease_expires_at = NULL WHERE id = ? AND lease_token = ?",
            (lease.run_id, lease.token),
        )

    def break_run_lease(self, run_id: str, who: str, reason: str) -> RunLease | None:
        with self._transaction(f"break the lease of run {run_id}") as conn:
            owner, token, expires = leases.run_lease(conn, run_id)
            if token is None or expires is None:
                return None
            conn.execute("UPDATE runs SET lease_expires_at = NULL WHERE id = ?", (run_id,))
            data = {"who": who, "reason": reason, "owner": str(owner), "token": token}
            self._audit(conn, "run.lease.break", run_id, None, data)
            return RunLease(run_id, owner, token, parse_utc(expires))

    # -------------------------------------------------------------------- journal

    def record(self, event: Event, fence: Fence | None = None) -> int:
        """Append one event and return its seq (the hot path of a rollout: group-committed).
        With ``fence``, the row is written only if the fence's tokens are current (checked in
        the transaction that writes it), else :class:`LeaseLost` is raised."""
        try:
            at = utc_iso(event.at)
        except ValueError as exc:
            raise StoreError(f"event {event.kind} of run {event.run_id}: {exc}") from exc
        data = _dumps(event.data, f"event {event.kind} data") if event.data else None
        params = (
            event.run_id,
            event.kind,
            at,
            event.host,
            event.stage,
            event.step,
            event.outcome,
            event.exit_code,
            event.excerpt,
            event.query_id,
            data,
        )
        return self._group_commit(params, fence)

    def _group_commit(self, params: tuple[Any, ...], fence: Fence | None) -> int:
        """Insert one event row, committed together with whatever other threads queued
        meanwhile: one transaction for many rows, yet each call returns only once its own row
        is committed (the journal's before/after guarantee holds). Returns the row's seq."""
        ticket = self._batch.add(params, fence)
        with self._write_lock:
            outcome = self._batch.outcome_of(ticket)
            if outcome is None:  # not committed by another thread with its own: commit the batch
                items = self._batch.take()
                conn = self._conn()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    outcomes = _insert_batch(conn, items)
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

    def events(self, run_id: str, host: str | None = None) -> list[Event]:
        """A run's events (of one host if given), in the order they were recorded."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ?"
        params: tuple[str, ...] = (run_id,)
        if host is not None:
            sql, params = sql + " AND host = ?", (run_id, host)
        sql += " ORDER BY seq"
        return [_event_from_row(row) for row in self._read("read events", sql, params)]

    def _audit(
        self,
        conn: sqlite3.Connection,
        kind: str,
        run_id: str,
        host: str | None,
        data: dict[str, Any],
    ) -> None:
        """Journal an operator's action inside the transaction that performs it."""
        conn.execute(
            _INSERT_EVENT,
            (
                run_id,
                kind,
                self._now(),
                host,
                None,
                None,
                None,
                None,
                None,
                None,
                _dumps(data, kind),
            ),
        )

    # --------------------------------------------------------------------- leases

    def acquire_lease(
        self, host: str, owner: Owner, ttl: float, *, fence: Fence | None = None
    ) -> Lease:
        """Grant ``host``'s lease, renew it for its holder, or raise :class:`LeaseHeld` (see
        :func:`fleet.store.sqlite_leases.acquire`); with ``fence``, only for the run's owner."""
        leases.check_ttl(ttl)
        with self._transaction(f"take the lease of {host}") as conn:
            if fence is not None:
                leases.check_fence(conn, fence)
            return leases.acquire(conn, host, owner, leases.to_ms(self._clock.now()), ttl)

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease we still hold (same token), even past its expiry if nobody took it;
        raise :class:`LeaseHeld` naming the new holder, or StoreError when it was broken."""
        leases.check_ttl(ttl)
        with self._transaction(f"renew the lease of {lease.host}") as conn:
            return leases.renew(conn, lease, leases.to_ms(self._clock.now()), ttl)

    def release_lease(self, lease: Lease) -> None:
        """Give the lease up; a no-op if it is no longer ours (token changed)."""
        self._write(
            f"release the lease of {lease.host}",
            "DELETE FROM leases WHERE host = ? AND token = ?",
            (lease.host, lease.token),
        )

    def list_leases(self) -> list[Lease]:
        """Every lease row, expired ones included (compare ``expires_at`` to tell)."""
        rows = self._read("list leases", f"SELECT {LEASE_COLUMNS} FROM leases ORDER BY host")
        return [leases.lease_from_row(row) for row in rows]

    def break_lease(self, host: str, who: str, reason: str) -> Lease | None:
        """Delete ``host``'s lease whoever holds it, and journal who did it and why."""
        with self._transaction(f"break the lease of {host}") as conn:
            current = leases.lease_row(conn, host)
            if current is None:
                return None
            conn.execute("DELETE FROM leases WHERE host = ?", (host,))
            data = {
                "who": who,
                "reason": reason,
                "owner": str(current.owner),
                "token": current.token,
            }
            self._audit(conn, "lease.break", current.owner.run_id or "-", host, data)
            return current

    # ----------------------------------------------------------------- quarantine

    def quarantine(
        self, host: str, run_id: str, reason: str, *, fence: Fence | None = None
    ) -> None:
        with self._transaction(f"quarantine {host}") as conn:
            if fence is not None:
                leases.check_fence(conn, fence)
            conn.execute(
                "INSERT INTO quarantine (host, run_id, reason, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (host) DO UPDATE SET run_id = excluded.run_id,"
                " reason = excluded.reason, at = excluded.at",
                (host, run_id, reason, self._now()),
            )

    def quarantined(self) -> list[QuarantineEntry]:
        rows = self._read(
            "list quarantine", "SELECT host, run_id, reason, at FROM quarantine ORDER BY host"
        )
        return [
            QuarantineEntry(host, run_id, reason, parse_utc(at))
            for host, run_id, reason, at in rows
        ]

    def clear_quarantine(self, host: str, who: str) -> bool:
        """Let later rollouts take ``host`` again; journaled under run ``-``."""
        with self._transaction(f"clear the quarantine of {host}") as conn:
            row = conn.execute(
                "SELECT run_id, reason FROM quarantine WHERE host = ?", (host,)
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM quarantine WHERE host = ?", (host,))
            data = {"who": who, "run_id": row[0], "reason": row[1]}
            self._audit(conn, "quarantine.clear", "-", host, data)
            return True

    # ----------------------------------------------------------------------- halt

    def set_halt(self, who: str, reason: str) -> None:
        with self._transaction("set the global halt") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO halt (id, who, reason, at) VALUES (1, ?, ?, ?)",
                (who, reason, self._now()),
            )
            self._audit(conn, "halt.set", "-", None, {"who": who, "reason": reason})

    def clear_halt(self, who: str) -> bool:
        with self._transaction("clear the global halt") as conn:
            row = conn.execute("SELECT who, reason FROM halt WHERE id = 1").fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM halt WHERE id = 1")
            self._audit(
                conn, "halt.clear", "-", None, {"who": who, "set_by": row[0], "reason": row[1]}
            )
            return True

    def halt_state(self) -> HaltState | None:
        """Cheap enough to ask before every host: one primary-key lookup, no write."""
        rows = self._read("read the global halt", "SELECT who, reason, at FROM halt WHERE id = 1")
        if not rows:
            return None
        who, reason, at = rows[0]
        return HaltState(who, reason, parse_utc(at))

    # ------------------------------------------------------------------ host keys

    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        rows = self._read(
            f"read the pinned key of {host}",
            "SELECT key_type, blob FROM host_keys WHERE host = ? AND role = ?",
            (host, role),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None:
        """Pin (or re-pin) a key; ``pinned_at`` changes only when the key does."""
        self._write(
            f"pin the {role} key of {host}",
            "INSERT INTO host_keys (host, role, key_type, blob, pinned_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (host, role) DO UPDATE SET"
            " pinned_at = CASE WHEN key_type = excluded.key_type AND blob = excluded.blob"
            " THEN pinned_at ELSE excluded.pinned_at END,"
            " key_type = excluded.key_type, blob = excluded.blob",
            (host, role, key_type, blob, self._now()),
        )

    def pinned_keys(self, host: str | None = None) -> list[PinnedKey]:
        """Every pinned key (of one host if given), by host and role."""
        sql = "SELECT host, role, key_type, blob, pinned_at FROM host_keys"
        rows = self._read(
            "list pinned keys",
            sql + (" WHERE host = ? ORDER BY role" if host else " ORDER BY host, role"),
            (host,) if host else (),
        )
        return [PinnedKey(h, r, t, b, parse_utc(at)) for h, r, t, b, at in rows]

    def forget_key(self, host: str, role: str, who: str, reason: str) -> bool:
        """Drop a pin so the next contact trusts the key it meets. Audited."""
        with self._transaction(f"forget the {role} key of {host}") as conn:
            gone = conn.execute(
                "DELETE FROM host_keys WHERE host = ? AND role = ?", (host, role)
            ).rowcount
            if gone:
                self._audit(
                    conn, "hostkey.forget", "-", host, {"who": who, "reason": reason, "role": role}
                )
        return bool(gone)

    # ------------------------------------------------------------- disk records

    def record_array(self, array: OwnedArray) -> None:
        disk_records.record_array(self._write, array, self._now())

    def owned_arrays(self, host: str | None = None) -> list[OwnedArray]:
        return disk_records.owned_arrays(self._read, host)

    def save_preview(self, preview: Preview) -> None:
        disk_records.save_preview(self._write, preview, self._now())

    def get_preview(self, preview_id: str) -> Preview | None:
        return disk_records.get_preview(self._read, preview_id)

    # ------------------------------------------------------------------ schedules

    def add_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule; ``created_at`` and ``since`` default to now. Audited."""
        if schedule.missed not in MISSED_POLICIES:
            raise StoreError(f"schedule {schedule.name}: unknown missed policy {schedule.missed!r}")
        now = leases.to_ms(self._clock.now())
        created = leases.to_ms(schedule.created_at) if schedule.created_at else now
        since = leases.to_ms(schedule.since) if schedule.since else created
        expires = utc_iso(schedule.expires_at) if schedule.expires_at else None
        args = _dumps(list(schedule.args), f"schedule {schedule.name} args")
        with self._transaction(f"add schedule {schedule.name}") as conn:
            if conn.execute("SELECT 1 FROM schedules WHERE name = ?", (schedule.name,)).fetchone():
                raise StoreError(
                    f"schedule {schedule.name!r} already exists in {self.path}",
                    hint=f"`fleet schedule remove {schedule.name}` first, or pick another name",
                )
            conn.execute(
                f"INSERT INTO schedules ({_SCHEDULE_COLUMNS}) VALUES ({_marks(11)})",
                (
                    schedule.name,
                    schedule.plan,
                    schedule.cron,
                    schedule.tz,
                    args,
                    schedule.missed,
                    int(schedule.paused),
                    schedule.created_by,
                    utc_iso(created),
                    utc_iso(since),
                    expires,
                ),
            )
            data = {"who": schedule.created_by, "plan": schedule.plan, "cron": schedule.cron}
            self._audit(conn, "schedule.add", "-", None, {**data, "schedule": schedule.name})
        return replace(schedule, created_at=created, since=since, last_due=None)

    def get_schedule(self, name: str) -> ScheduleRecord:
        rows = self._read("read a schedule", f"{_SELECT_SCHEDULES} WHERE s.name = ?", (name,))
        if not rows:
            raise StoreError(f"no schedule {name!r}; `fleet schedule list` lists them")
        return _schedule_from_row(rows[0])

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._read("list schedules", f"{_SELECT_SCHEDULES} ORDER BY s.name")
        return [_schedule_from_row(row) for row in rows]

    def remove_schedule(self, name: str, who: str) -> bool:
        """Forget a schedule and its fires (the runs it started stay). Audited."""
        with self._transaction(f"remove schedule {name}") as conn:
            gone = conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount
            conn.execute("DELETE FROM schedule_fires WHERE schedule = ?", (name,))
            if gone:
                self._audit(conn, "schedule.remove", "-", None, {"who": who, "schedule": name})
            return bool(gone)

    def set_schedule_paused(self, name: str, paused: bool, who: str) -> ScheduleRecord:
        with self._transaction(f"{'pause' if paused else 'resume'} schedule {name}") as conn:
            sql = "UPDATE schedules SET paused = ? WHERE name = ?"
            params: tuple[Any, ...] = (int(paused), name)
            if not paused:
                sql = "UPDATE schedules SET paused = 0, since = ? WHERE name = ? AND paused = 1"
                params = (self._now(), name)
            conn.execute(sql, params)
            row = conn.execute(f"{_SELECT_SCHEDULES} WHERE s.name = ?", (name,)).fetchone()
            if row is None:
                raise StoreError(f"no schedule {name!r}; `fleet schedule list` lists them")
            kind = "schedule.pause" if paused else "schedule.resume"
            self._audit(conn, kind, "-", None, {"who": who, "schedule": name})
            return _schedule_from_row(row)

    def record_schedule_fire(
        self,
        name: str,
        due_at: datetime,
        run_id: str | None,
        *,
        outcome: str = "starting",
        by: str = "",
        detail: str | None = None,
    ) -> bool:
        """Claim one due time: the (schedule, due_at) primary key makes it unique for good."""
        due = utc_iso(due_at)
        with self._transaction(f"record a fire of schedule {name}") as conn:
            row = conn.execute("SELECT paused FROM schedules WHERE name = ?", (name,)).fetchone()
            if row is None or row[0]:
                return False
            done = conn.execute(
                "SELECT 1 FROM schedule_fires WHERE schedule = ? AND due_at = ?", (name, due)
            ).fetchone()
            if done:
                return False
            conn.execute(
                "INSERT INTO schedule_fires (schedule, due_at, fired_at, by, outcome, run_id,"
                " detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, due, self._now(), by, outcome, run_id, detail),
            )
            data = {"schedule": name, "due_at": due, "by": by, "outcome": outcome}
            self._audit(conn, "schedule.fire", run_id or "-", None, data)
            return True

    def update_schedule_fire(
        self, name: str, due_at: datetime, *, outcome: str, run_id: str | None, detail: str | None
    ) -> None:
        self._write(
            f"update a fire of schedule {name}",
            "UPDATE schedule_fires SET outcome = ?, run_id = ?, detail = ?"
            " WHERE schedule = ? AND due_at = ?",
            (outcome, run_id, detail, name, utc_iso(due_at)),
        )

    def schedule_fires(self, name: str, limit: int = 20) -> list[ScheduleFire]:
        rows = self._read(
            f"read the fires of schedule {name}",
            "SELECT schedule, due_at, fired_at, by, outcome, run_id, detail FROM schedule_fires"
            " WHERE schedule = ? ORDER BY due_at DESC LIMIT ?",
            (name, max(limit, 0)),
        )
        return [
            ScheduleFire(s, parse_utc(due), parse_utc(fired), by, outcome, run_id, detail)
            for s, due, fired, by, outcome, run_id, detail in rows
        ]


# ------------------------------------------------------------------------ helpers


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON: {exc}") from exc


def _check_state(state: str) -> None:
    if state not in RUN_STATES:
        raise StoreError(f"unknown run state {state!r}; expected one of {', '.join(RUN_STATES)}")


def _run_from_row(row: tuple[Any, ...]) -> RunRecord:
    rid, name, source, digest, hosts, options = row[:6]
    owner = owner_from(*row[6:12])
    state, reason, created, updated, token, expires = row[12:]
    lease = None
    if token is not None:
        lease = RunLease(rid, owner, token, parse_utc(expires) if expires else None)
    return RunRecord(
        id=rid,
        plan_name=name,
        plan_source=source,
        plan_hash=digest,
        hosts=tuple(json.loads(hosts)),
        options=json.loads(options),
        owner=owner,
        state=state,
        reason=reason,
        created_at=parse_utc(created),
        updated_at=parse_utc(updated),
        lease=lease,
    )


def _insert_batch(
    conn: sqlite3.Connection, items: list[tuple[int, tuple[Any, ...], Fence | None]]
) -> dict[int, int | LeaseLost]:
    """Insert a batch's rows whose fences are current, in one statement (SQLite checks each
    row's fence); each ticket's seq, or the refusal of its stale fence."""
    cursor = conn.executemany(_INSERT_FENCED, [row + _fence_params(f) for _, row, f in items])
    written = cursor.rowcount
    refusals: dict[Fence, LeaseLost] = {}
    if written != len(items):  # some fence was stale (rare): tell which, in this transaction
        refusals = leases.stale_fences(conn, {f for _, _, f in items if f is not None})
    outcomes: dict[int, int | LeaseLost] = {}
    valid = []
    for ticket, _, fence in items:
        refusal = refusals.get(fence) if fence is not None else None
        if refusal is not None:  # one exception per caller: each thread raises its own
            outcomes[ticket] = LeaseLost(refusal.what, refusal.why)
        else:
            valid.append(ticket)
    if len(valid) != written:
        raise StoreError(f"{len(valid)} of {len(items)} events were expected to be written")
    if valid:
        # one writer at a time (BEGIN IMMEDIATE): the rows got consecutive rowids
        (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
        first = int(last) - len(valid) + 1
        outcomes.update({ticket: first + i for i, ticket in enumerate(valid)})
    return outcomes


def _fence_params(fence: Fence | None) -> tuple[Any, ...]:
    if fence is None:
        return (0, None, None, None, None, None)
    return (1, fence.run_id, fence.run_token, fence.host, fence.host, fence.host_token)


def _event_from_row(row: tuple[Any, ...]) -> Event:
    seq, run_id, kind, at, host, stage, step, outcome, exit_code, excerpt, query_id, data = row
    return Event(
        run_id=run_id,
        kind=kind,
        at=parse_utc(at),
        host=host,
        stage=stage,
        step=step,
        outcome=outcome,
        exit_code=exit_code,
        excerpt=excerpt,
        query_id=query_id,
        data=json.loads(data) if data else {},
        seq=seq,
    )


def _schedule_from_row(row: tuple[Any, ...]) -> ScheduleRecord:
    name, plan, cron, tz, args, missed, paused, by, created, since, expires, last_due = row
    return ScheduleRecord(
        name=name,
        plan=plan,
        cron=cron,
        tz=tz,
        args=tuple(json.loads(args)),
        missed=missed,
        paused=bool(paused),
        created_by=by,
        created_at=parse_utc(created),
        since=parse_utc(since),
        expires_at=parse_utc(expires) if expires else None,
        last_due=parse_utc(last_due) if last_due else None,
    )
