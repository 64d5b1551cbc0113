"""Runs and their journal in the PostgreSQL store.

Journal appends need no group commit here: each is one ``INSERT ... RETURNING seq`` on a pooled
connection, and the server commits concurrent transactions together on its own.
"""

from __future__ import annotations

from fleet.errors import StoreError
from fleet.store.base import Event, Fence, RunRecord
from fleet.store.postgresql.core import INSERT_EVENT, PgCore
from fleet.store.postgresql.fencing import check_fence
from fleet.store.rows import (
    EVENT_COLUMNS,
    NATIVE_CODEC,
    RUN_COLUMNS,
    RUN_INSERT_COLUMNS,
    check_state,
    event_from_row,
    event_params,
    event_time,
    no_run,
    run_from_row,
    run_params,
    run_start_detail,
    to_ms,
)

_INSERT_RUN = (
    f"INSERT INTO runs ({RUN_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s::json,"
    " %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, now()), COALESCE(%s, %s, now()))"
    " ON CONFLICT (id) DO NOTHING"
)


class PgJournal(PgCore):
    """Runs (created, read, their state) and the append-only journal of their events."""

    # ----------------------------------------------------------------------- runs

    def create_run(self, run: RunRecord) -> None:
        """Store a new run (its id must be new), audited as ``run.start``."""
        created = to_ms(run.created_at) if run.created_at else None
        updated = to_ms(run.updated_at) if run.updated_at else None
        params = (*run_params(run), created, updated, created)
        detail = run_start_detail(run)
        with self._transaction("create a run") as cur:
            cur.execute(_INSERT_RUN, params)
            if cur.rowcount == 0:
                raise StoreError(f"run {run.id!r} already exists in {self.where}")
            self._audit_row(cur, "run.start", run.id, None, detail)

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._read("read a run", f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,))
        if not rows:
            raise no_run(run_id)
        return run_from_row(rows[0], NATIVE_CODEC)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` newest runs, newest first."""
        rows = self._read(
            "list runs",
            f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, seq DESC LIMIT %s",
            (max(limit, 0),),
        )
        return [run_from_row(row, NATIVE_CODEC) for row in rows]

    def set_run_state(
        self, run_id: str, state: str, reason: str | None = None, *, fence: Fence | None = None
    ) -> None:
        """Set the run's state; with ``fence``, only while its tokens are current."""
        check_state(state)
        with self._transaction("update a run") as cur:
            check_fence(cur, fence)
            cur.execute(
                "UPDATE runs SET state = %s, reason = %s, updated_at = now() WHERE id = %s",
                (state, reason, run_id),
            )
            changed = cur.rowcount
        if not changed:
            raise no_run(run_id)

    # -------------------------------------------------------------------- journal

    def record(self, event: Event, fence: Fence | None = None) -> int:
        """Append one event and return its seq, once committed. With ``fence``, the row is
        written only if the fence's tokens are current (checked in the transaction that writes
        it, rows locked: :mod:`fleet.store.postgresql.fencing`), else :class:`LeaseLost`."""
        params = event_params(event, event_time(event))
        with self._transaction("record an event") as cur:
            check_fence(cur, fence)
            cur.execute(INSERT_EVENT, params)
            row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def events(self, run_id: str, host: str | None = None) -> list[Event]:
        """A run's events (of one host if given), in the order they were recorded."""
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = %s"
        params: tuple[str, ...] = (run_id,)
        if host is not None:
            sql, params = sql + " AND host = %s", (run_id, host)
        sql += " ORDER BY seq"
        return [event_from_row(r, NATIVE_CODEC) for r in self._read("read events", sql, params)]
