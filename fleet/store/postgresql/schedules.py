"""Schedules in the PostgreSQL store, and each due time recorded once (see fleet.schedule)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from fleet.store.base import ScheduleFire, ScheduleRecord
from fleet.store.postgresql.core import PgCore
from fleet.store.rows import (
    FIRE_COLUMNS,
    NATIVE_CODEC,
    SCHEDULE_COLUMNS,
    SELECT_SCHEDULES,
    fire_from_row,
    no_schedule,
    schedule_from_row,
    to_ms,
)
from fleet.store.rules import FireClaim, ScheduleRules

_INSERT = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s, %s, %s,"
    " COALESCE(%s, now()), COALESCE(%s, %s, now()), %s) ON CONFLICT (name) DO NOTHING"
    " RETURNING created_at, since"
)


class PgSchedules(PgCore, ScheduleRules[psycopg.Cursor[Any]]):
    """Schedules (added, paused, removed: audited) and their fires (the rules:
    :class:`~fleet.store.rules.ScheduleRules`)."""

    def _insert_schedule(
        self, cur: psycopg.Cursor[Any], schedule: ScheduleRecord, args: str
    ) -> tuple[datetime, datetime] | None:
        created = to_ms(schedule.created_at) if schedule.created_at else None
        since = to_ms(schedule.since) if schedule.since else None
        expires = to_ms(schedule.expires_at) if schedule.expires_at else None
        row = cur.execute(
            _INSERT,
            (
                schedule.name,
                schedule.plan,
                schedule.cron,
                schedule.tz,
                args,
                schedule.missed,
                schedule.paused,
                schedule.created_by,
                created,
                since,
                created,
                expires,
            ),
        ).fetchone()
        if row is None:
            return None
        at, since_at = (NATIVE_CODEC.time(value) for value in row)
        return at, since_at

    def get_schedule(self, name: str) -> ScheduleRecord:
        rows = self._read("read a schedule", f"{SELECT_SCHEDULES} WHERE s.name = %s", (name,))
        if not rows:
            raise no_schedule(name)
        return schedule_from_row(rows[0], NATIVE_CODEC)

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._read("list schedules", f"{SELECT_SCHEDULES} ORDER BY s.name")
        return [schedule_from_row(row, NATIVE_CODEC) for row in rows]

    def _delete_schedule(self, cur: psycopg.Cursor[Any], name: str) -> bool:
        cur.execute("DELETE FROM schedules WHERE name = %s", (name,))
        gone = cur.rowcount
        cur.execute("DELETE FROM schedule_fires WHERE schedule = %s", (name,))
        return bool(gone)

    def _set_paused(
        self, cur: psycopg.Cursor[Any], name: str, paused: bool
    ) -> ScheduleRecord | None:
        if paused:
            cur.execute("UPDATE schedules SET paused = true WHERE name = %s", (name,))
        else:
            cur.execute(
                "UPDATE schedules SET paused = false, since = now() WHERE name = %s AND paused",
                (name,),
            )
        row = cur.execute(f"{SELECT_SCHEDULES} WHERE s.name = %s", (name,)).fetchone()
        return None if row is None else schedule_from_row(row, NATIVE_CODEC)

    def _schedule_paused(self, cur: psycopg.Cursor[Any], name: str) -> bool | None:
        row = cur.execute(
            "SELECT paused FROM schedules WHERE name = %s FOR SHARE", (name,)
        ).fetchone()
        return None if row is None else bool(row[0])

    def _insert_fire(self, cur: psycopg.Cursor[Any], fire: FireClaim) -> bool:
        claimed = cur.execute(
            f"INSERT INTO schedule_fires ({FIRE_COLUMNS})"
            " VALUES (%s, %s, now(), %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            fire,
        ).fetchone()
        return claimed is not None

    def update_schedule_fire(
        self, name: str, due_at: datetime, *, outcome: str, run_id: str | None, detail: str | None
    ) -> None:
        self._write(
            f"update a fire of schedule {name}",
            "UPDATE schedule_fires SET outcome = %s, run_id = %s, detail = %s"
            " WHERE schedule = %s AND due_at = %s",
            (outcome, run_id, detail, name, to_ms(due_at)),
        )

    def schedule_fires(self, name: str, limit: int = 20) -> list[ScheduleFire]:
        rows = self._read(
            f"read the fires of schedule {name}",
            f"SELECT {FIRE_COLUMNS} FROM schedule_fires"
            " WHERE schedule = %s ORDER BY due_at DESC LIMIT %s",
            (name, max(limit, 0)),
        )
        return [fire_from_row(row, NATIVE_CODEC) for row in rows]
