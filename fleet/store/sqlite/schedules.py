"""Schedules in the SQLite store, and each due time recorded once (see fleet.schedule)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from fleet.clock import utc_iso
from fleet.errors import StoreError
from fleet.store.base import MISSED_POLICIES, ScheduleFire, ScheduleRecord
from fleet.store.rows import (
    FIRE_COLUMNS,
    SCHEDULE_COLUMNS,
    SELECT_SCHEDULES,
    TEXT_CODEC,
    dumps,
    fire_from_row,
    no_schedule,
    schedule_from_row,
    to_ms,
)
from fleet.store.sqlite.core import SqliteCore


class SqliteSchedules(SqliteCore):
    """Schedules (added, paused, removed: audited) and their fires."""

    def add_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule; ``created_at`` and ``since`` default to now. Audited."""
        if schedule.missed not in MISSED_POLICIES:
            raise StoreError(f"schedule {schedule.name}: unknown missed policy {schedule.missed!r}")
        now = to_ms(self._clock.now())
        created = to_ms(schedule.created_at) if schedule.created_at else now
        since = to_ms(schedule.since) if schedule.since else created
        expires = utc_iso(schedule.expires_at) if schedule.expires_at else None
        args = dumps(list(schedule.args), f"schedule {schedule.name} args")
        with self._transaction(f"add schedule {schedule.name}") as conn:
            if conn.execute("SELECT 1 FROM schedules WHERE name = ?", (schedule.name,)).fetchone():
                raise StoreError(
                    f"schedule {schedule.name!r} already exists in {self.path}",
                    hint=f"`fleet schedule remove {schedule.name}` first, or pick another name",
                )
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
            data = {"who": schedule.created_by, "plan": schedule.plan, "cron": schedule.cron}
            self._audit(conn, "schedule.add", "-", None, {**data, "schedule": schedule.name})
        return replace(schedule, created_at=created, since=since, last_due=None)

    def get_schedule(self, name: str) -> ScheduleRecord:
        rows = self._read("read a schedule", f"{SELECT_SCHEDULES} WHERE s.name = ?", (name,))
        if not rows:
            raise no_schedule(name)
        return schedule_from_row(rows[0], TEXT_CODEC)

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._read("list schedules", f"{SELECT_SCHEDULES} ORDER BY s.name")
        return [schedule_from_row(row, TEXT_CODEC) for row in rows]

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
            row = conn.execute(f"{SELECT_SCHEDULES} WHERE s.name = ?", (name,)).fetchone()
            if row is None:
                raise no_schedule(name)
            kind = "schedule.pause" if paused else "schedule.resume"
            self._audit(conn, kind, "-", None, {"who": who, "schedule": name})
            return schedule_from_row(row, TEXT_CODEC)

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
                f"INSERT INTO schedule_fires ({FIRE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            f"SELECT {FIRE_COLUMNS} FROM schedule_fires"
            " WHERE schedule = ? ORDER BY due_at DESC LIMIT ?",
            (name, max(limit, 0)),
        )
        return [fire_from_row(row, TEXT_CODEC) for row in rows]
