"""Runs and their journal in the SQLite store; journal appends are group-committed."""

from __future__ import annotations

import sqlite3

from fleet.clock import utc_iso
from fleet.errors import StoreError
from fleet.store.base import Event, Fence, RunRecord
from fleet.store.rows import (
    EVENT_COLUMNS,
    RUN_COLUMNS,
    RUN_INSERT_COLUMNS,
    TEXT_CODEC,
    check_state,
    event_from_row,
    event_params,
    event_text,
    no_run,
    run_from_row,
    run_params,
    run_start_detail,
)
from fleet.store.sqlite.core import SqliteCore
from fleet.store.sqlite.fencing import check_fence


class SqliteJournal(SqliteCore):
    """Runs (created, read, their state) and the append-only journal of their events."""

    # ----------------------------------------------------------------------- runs

    def create_run(self, run: RunRecord) -> None:
        """Store a new run (its id must be new), audited as ``run.start``."""
        created = utc_iso(run.created_at) if run.created_at else self._now()
        updated = utc_iso(run.updated_at) if run.updated_at else created
        params = (*run_params(run), created, updated)
        detail = run_start_detail(run)
        try:
            with self._transaction("create a run") as conn:
                conn.execute(
                    f"INSERT INTO runs ({RUN_INSERT_COLUMNS}) VALUES ({_marks(16)})", params
                )
                self._audit_row(conn, "run.start", run.id, None, detail, self._now())
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(f"run {run.id!r} already exists in {self.path}") from exc
            raise

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._read("read a run", f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise no_run(run_id)
        return run_from_row(rows[0], TEXT_CODEC)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` newest runs, newest first."""
        rows = self._read(
            "list runs",
            f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (max(limit, 0),),
        )
        return [run_from_row(row, TEXT_CODEC) for row in rows]

    def set_run_state(
        self, run_id: str, state: str, reason: str | None = None, *, fence: Fence | None = None
    ) -> None:
        """Set the run's state; with ``fence``, only while its tokens are current."""
        check_state(state)
        with self._transaction("update a run") as conn:
            check_fence(conn, fence)
            changed = conn.execute(
                "UPDATE runs SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, reason, self._now(), run_id),
            ).rowcount
        if not changed:
            raise no_run(run_id)

    # -------------------------------------------------------------------- journal

    def record(self, event: Event, fence: Fence | None = None) -> int:
        """Append one event and return its seq (the hot path of a rollout: group-committed).
        With ``fence``, the row is written only if the fence's tokens are current (checked in
        the transaction that writes it), else :class:`LeaseLost` is raised."""
        return self._group_commit(event_params(event, event_text(event)), fence)

    def events(self, run_id: str, host: str | None = None) -> list[Event]:
        """A run's events (of one host if given), in the order they were recorded."""
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?"
        params: tuple[str, ...] = (run_id,)
        if host is not None:
            sql, params = sql + " AND host = ?", (run_id, host)
        sql += " ORDER BY seq"
        return [event_from_row(row, TEXT_CODEC) for row in self._read("read events", sql, params)]


def _marks(count: int) -> str:
    return ", ".join("?" * count)
