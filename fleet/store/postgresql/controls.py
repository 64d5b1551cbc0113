"""The operators' controls in the PostgreSQL store: the quarantine ledger and the global halt.

Every change of the halt table fires ``NOTIFY fleet_halt`` (a trigger, so a change made by hand
counts too). :meth:`PgControls.wait_halt` listens on a connection of its own and re-reads the
switch when woken, and at least every :data:`HALT_POLL` seconds: if the listening connection
breaks, polling alone still sees a halt within that time, and the next wait listens again.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from fleet.store.base import Fence, HaltState, QuarantineEntry
from fleet.store.postgresql.core import PgCore
from fleet.store.postgresql.fencing import check_fence
from fleet.store.rows import NATIVE_CODEC, quarantine_from_row
from fleet.store.rules import ControlRules

#: The longest a waiter goes without reading the switch (the fallback when notifications fail).
HALT_POLL = 1.0


class PgControls(PgCore, ControlRules[psycopg.Cursor[Any]]):
    """Hosts kept out of rollouts, and the switch that stops every rollout (what clearing and
    setting them records: :class:`~fleet.store.rules.ControlRules`)."""

    # ----------------------------------------------------------------- quarantine

    def quarantine(
        self, host: str, run_id: str, reason: str, *, fence: Fence | None = None
    ) -> None:
        """Keep ``host`` out of later rollouts; with ``fence``, only while its tokens are current."""
        with self._transaction(f"quarantine {host}") as cur:
            check_fence(cur, fence)
            cur.execute(
                "INSERT INTO quarantine (host, run_id, reason, at) VALUES (%s, %s, %s, now())"
                " ON CONFLICT (host) DO UPDATE SET run_id = excluded.run_id,"
                " reason = excluded.reason, at = excluded.at",
                (host, run_id, reason),
            )

    def quarantined(self) -> list[QuarantineEntry]:
        rows = self._read(
            "list quarantine", "SELECT host, run_id, reason, at FROM quarantine ORDER BY host"
        )
        return [quarantine_from_row(row, NATIVE_CODEC) for row in rows]

    def _delete_quarantine(self, cur: psycopg.Cursor[Any], host: str) -> tuple[str, str] | None:
        row = cur.execute(
            "DELETE FROM quarantine WHERE host = %s RETURNING run_id, reason", (host,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    # ----------------------------------------------------------------------- halt

    def _write_halt(self, cur: psycopg.Cursor[Any], who: str, reason: str) -> None:
        cur.execute(
            "INSERT INTO halt (id, who, reason, at) VALUES (1, %s, %s, now())"
            " ON CONFLICT (id) DO UPDATE SET who = excluded.who, reason = excluded.reason,"
            " at = excluded.at",
            (who, reason),
        )

    def _delete_halt(self, cur: psycopg.Cursor[Any]) -> tuple[str, str] | None:
        row = cur.execute("DELETE FROM halt WHERE id = 1 RETURNING who, reason").fetchone()
        return None if row is None else (row[0], row[1])

    def halt_state(self) -> HaltState | None:
        rows = self._read("read the global halt", "SELECT who, reason, at FROM halt WHERE id = 1")
        if not rows:
            return None
        who, reason, at = rows[0]
        return HaltState(who, reason, NATIVE_CODEC.time(at))

    def wait_halt(self, timeout: float) -> HaltState | None:
        """Listen for a change of the switch; read it at each wake-up and every second."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            listening = self._halts.listening()  # before the read: a later change wakes us
            state = self.halt_state()
            left = deadline - time.monotonic()
            if state is not None or left <= 0:
                return state
            if not (listening and self._halts.wait(min(left, HALT_POLL))):
                time.sleep(min(left, HALT_POLL))
