"""Schedules in the PostgreSQL store, and each due time recorded once (see fleet.schedule)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from fleet.clock import utc_iso
from fleet.errors import StoreError
from fleet.store.base import MISSED_POLICIES, ScheduleFire, ScheduleRecord
from fleet.store.postgresql.core import PgCore
from fleet.store.rows import (
    FIRE_COLUMNS,
    NATIVE_CODEC,
    SCHEDULE_COLUMNS,
    SELECT_SCHEDULES,
    dumps,
    fire_from_row,
    no_schedule,
    schedule_from_row,
    to_ms,
)

_INSERT = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s, %s, %s,"
    " COALESCE(%s, now()), COALESCE(%s, %s, now()), %s) ON CONFLICT (name) DO NOTHING"
    " RETURNING created_at, since"
)


class PgSchedules(PgCore):
    """Schedules (added, paused, removed: audited) and their fires."""

    def add_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule; ``created_at`` and ``since`` default to now. Audited."""
        if schedule.missed not in MISSED_POLICIES:
            raise StoreError(f"schedule {schedule.name}: unknown missed policy {schedule.missed!r}")
        created = to_ms(schedule.created_at) if schedule.created_at else None
        since = to_ms(schedule.since) if schedule.since else None
        expires = to_ms(schedule.expires_at) if schedule.expires_at else None
        args = dumps(list(schedule.args), f"schedule {schedule.name} args")
        with self._transaction(f"add schedule {schedule.name}") as cur:
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
                raise StoreError(
                    f"schedule {schedule.name!r} already exists in {self.where}",
                    hint=f"`fleet schedule remove {schedule.name}` first, or pick another name",
                )
            data = {"who": schedule.created_by, "plan": schedule.plan, "cron": schedule.cron}
            self._audit(cur, "schedule.add", "-", None, {**data, "schedule": schedule.name})
        at, since_at = (NATIVE_CODEC.time(value) for value in row)
        return replace(schedule, created_at=at, since=since_at, last_due=None)

    def get_schedule(self, name: str) -> ScheduleRecord:
        rows = self._read("read a schedule", f"{SELECT_SCHEDULES} WHERE s.name = %s", (name,))
        if not rows:
            raise no_schedule(name)
        return schedule_from_row(rows[0], NATIVE_CODEC)

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._read("list schedules", f"{SELECT_SCHEDULES} ORDER BY s.name")
        return [schedule_from_row(row, NATIVE_CODEC) for row in rows]

    def remove_schedule(self, name: str, who: str) -> bool:
        """Forget a schedule and its fires (the runs it started stay). Audited."""
        with self._transaction(f"remove schedule {name}") as cur:
            cur.execute("DELETE FROM schedules WHERE name = %s", (name,))
            gone = cur.rowcount
            cur.execute("DELETE FROM schedule_fires WHERE schedule = %s", (name,))
            if gone:
                self._audit(cur, "schedule.remove", "-", None, {"who": who, "schedule": name})
            return bool(gone)

    def set_schedule_paused(self, name: str, paused: bool, who: str) -> ScheduleRecord:
        with self._transaction(f"{'pause' if paused else 'resume'} schedule {name}") as cur:
            if paused:
                cur.execute("UPDATE schedules SET paused = true WHERE name = %s", (name,))
            else:
                cur.execute(
                    "UPDATE schedules SET paused = false, since = now() WHERE name = %s AND paused",
                    (name,),
                )
            row = cur.execute(f"{SELECT_SCHEDULES} WHERE s.name = %s", (name,)).fetchone()
            if row is None:
                raise no_schedule(name)
            kind = "schedule.pause" if paused else "schedule.resume"
            self._audit(cur, kind, "-", None, {"who": who, "schedule": name})
            return schedule_from_row(row, NATIVE_CODEC)

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
        due = to_ms(due_at)
        with self._transaction(f"record a fire of schedule {name}") as cur:
            row = cur.execute(
                "SELECT paused FROM schedules WHERE name = %s FOR SHARE", (name,)
            ).fetchone()
            if row is None or row[0]:
                return False
            claimed = cur.execute(
                f"INSERT INTO schedule_fires ({FIRE_COLUMNS})"
                " VALUES (%s, %s, now(), %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                (name, due, by, outcome, run_id, detail),
            ).fetchone()
            if claimed is None:
                return False
            data = {"schedule": name, "due_at": utc_iso(due), "by": by}
            self._audit(cur, "schedule.fire", run_id or "-", None, {**data, "outcome": outcome})
            return True

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
