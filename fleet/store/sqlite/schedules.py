"""Schedules in the SQLite store, and each due time recorded once (see fleet.schedule)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from fleet.clock import utc_iso
from fleet.store.base import ScheduleFire, ScheduleRecord
from fleet.store.rows import (
    FIRE_COLUMNS,
    SCHEDULE_COLUMNS,
    SELECT_SCHEDULES,
    TEXT_CODEC,
    fire_from_row,
    no_schedule,
    schedule_from_row,
    to_ms,
)
from fleet.store.rules import FireClaim, ScheduleRules
from fleet.store.sqlite.core import SqliteCore


class SqliteSchedules(SqliteCore, ScheduleRules[sqlite3.Connection]):
    """Schedules (added, paused, removed: audited) and their fires (the rules:
    :class:`~fleet.store.rules.ScheduleRules`)."""

    def _insert_schedule(
        self, conn: sqlite3.Connection, schedule: ScheduleRecord, args: str
    ) -> tuple[datetime, datetime] | None:
        now = to_ms(self._clock.now())
        created = to_ms(schedule.created_at) if schedule.created_at else now
        since = to_ms(schedule.since) if schedule.since else created
        expires = utc_iso(schedule.expires_at) if schedule.expires_at else None
        if conn.execute("SELECT 1 FROM schedules WHERE name = ?", (schedule.name,)).fetchone():
            return None
        conn.execute(
            f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ({', '.join('?' * 11)})",
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
        return created, since

    def get_schedule(self, name: str) -> ScheduleRecord:
        rows = self._read("read a schedule", f"{SELECT_SCHEDULES} WHERE s.name = ?", (name,))
        if not rows:
            raise no_schedule(name)
        return schedule_from_row(rows[0], TEXT_CODEC)

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._read("list schedules", f"{SELECT_SCHEDULES} ORDER BY s.name")
        return [schedule_from_row(row, TEXT_CODEC) for row in rows]

    def _delete_schedule(self, conn: sqlite3.Connection, name: str) -> bool:
        gone = conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount
        conn.execute("DELETE FROM schedule_fires WHERE schedule = ?", (name,))
        return bool(gone)

    def _set_paused(
        self, conn: sqlite3.Connection, name: str, paused: bool
    ) -> ScheduleRecord | None:
        sql = "UPDATE schedules SET paused = ? WHERE name = ?"
        params: tuple[Any, ...] = (int(paused), name)
        if not paused:
            sql = "UPDATE schedules SET paused = 0, since = ? WHERE name = ? AND paused = 1"
            params = (self._now(), name)
        conn.execute(sql, params)
        row = conn.execute(f"{SELECT_SCHEDULES} WHERE s.name = ?", (name,)).fetchone()
        return None if row is None else schedule_from_row(row, TEXT_CODEC)

    def _schedule_paused(self, conn: sqlite3.Connection, name: str) -> bool | None:
        row = conn.execute("SELECT paused FROM schedules WHERE name = ?", (name,)).fetchone()
        return None if row is None else bool(row[0])

    def _insert_fire(self, conn: sqlite3.Connection, fire: FireClaim) -> bool:
        name, due, by, outcome, run_id, detail = fire
        at = utc_iso(due)
        done = conn.execute(
            "SELECT 1 FROM schedule_fires WHERE schedule = ? AND due_at = ?", (name, at)
        ).fetchone()
        if done:
            return False
        conn.execute(
            f"INSERT INTO schedule_fires ({FIRE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, at, self._now(), by, outcome, run_id, detail),
        )
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
            f"SELECT {FIRE_COLUMNS} FROM schedule_fires"
            " WHERE schedule = ? ORDER BY due_at DESC LIMIT ?",
            (name, max(limit, 0)),
        )
        return [fire_from_row(row, TEXT_CODEC) for row in rows]
