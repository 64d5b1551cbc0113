"""The operators' controls in the SQLite store: the quarantine ledger and the global halt."""

from __future__ import annotations

import sqlite3
import time

from fleet.clock import parse_utc
from fleet.store.base import Fence, HaltState, QuarantineEntry
from fleet.store.rows import TEXT_CODEC, quarantine_from_row
from fleet.store.rules import ControlRules
from fleet.store.sqlite.core import SqliteCore
from fleet.store.sqlite.fencing import check_fence

#: How often :meth:`SqliteControls.wait_halt` reads the switch: one primary-key lookup.
HALT_POLL = 0.25


class SqliteControls(SqliteCore, ControlRules[sqlite3.Connection]):
    """Hosts kept out of rollouts, and the switch that stops every rollout (what clearing and
    setting them records: :class:`~fleet.store.rules.ControlRules`)."""

    # ----------------------------------------------------------------- quarantine

    def quarantine(
        self, host: str, run_id: str, reason: str, *, fence: Fence | None = None
    ) -> None:
        """Keep ``host`` out of later rollouts; with ``fence``, only while its tokens are current."""
        with self._transaction(f"quarantine {host}") as conn:
            check_fence(conn, fence)
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
        return [quarantine_from_row(row, TEXT_CODEC) for row in rows]

    def _delete_quarantine(self, conn: sqlite3.Connection, host: str) -> tuple[str, str] | None:
        row = conn.execute(
            "SELECT run_id, reason FROM quarantine WHERE host = ?", (host,)
        ).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM quarantine WHERE host = ?", (host,))
        return row[0], row[1]

    # ----------------------------------------------------------------------- halt

    def _write_halt(self, conn: sqlite3.Connection, who: str, reason: str) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO halt (id, who, reason, at) VALUES (1, ?, ?, ?)",
            (who, reason, self._now()),
        )

    def _delete_halt(self, conn: sqlite3.Connection) -> tuple[str, str] | None:
        row = conn.execute("SELECT who, reason FROM halt WHERE id = 1").fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM halt WHERE id = 1")
        return row[0], row[1]

    def halt_state(self) -> HaltState | None:
        """Cheap enough to ask before every host: one primary-key lookup, no write."""
        rows = self._read("read the global halt", "SELECT who, reason, at FROM halt WHERE id = 1")
        if not rows:
            return None
        who, reason, at = rows[0]
        return HaltState(who, reason, parse_utc(at))

    def wait_halt(self, timeout: float) -> HaltState | None:
        """Poll the switch every :data:`HALT_POLL` seconds: SQLite has no notifications, and a
        read is a lookup in a file the page cache holds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            state = self.halt_state()
            left = deadline - time.monotonic()
            if state is not None or left <= 0:
                return state
            time.sleep(min(HALT_POLL, left))
