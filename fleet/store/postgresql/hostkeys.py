"""Pinned host keys in the PostgreSQL store, one per host and boot role (see fleet.transport)."""

from __future__ import annotations

from fleet.store.base import PinnedKey
from fleet.store.postgresql.core import PgCore
from fleet.store.rows import NATIVE_CODEC, key_from_row


class PgHostKeys(PgCore):
    """The keys fleet pinned, and forgetting one (audited)."""

    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        rows = self._read(
            f"read the pinned key of {host}",
            "SELECT key_type, blob FROM host_keys WHERE host = %s AND role = %s",
            (host, role),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None:
        """Pin (or re-pin) a key; ``pinned_at`` changes only when the key does."""
        self._write(
            f"pin the {role} key of {host}",
            "INSERT INTO host_keys (host, role, key_type, blob, pinned_at)"
            " VALUES (%s, %s, %s, %s, now())"
            " ON CONFLICT (host, role) DO UPDATE SET"
            " pinned_at = CASE WHEN host_keys.key_type = excluded.key_type"
            " AND host_keys.blob = excluded.blob"
            " THEN host_keys.pinned_at ELSE excluded.pinned_at END,"
            " key_type = excluded.key_type, blob = excluded.blob",
            (host, role, key_type, blob),
        )

    def pinned_keys(self, host: str | None = None) -> list[PinnedKey]:
        """Every pinned key (of one host if given), by host and role."""
        sql = "SELECT host, role, key_type, blob, pinned_at FROM host_keys"
        rows = self._read(
            "list pinned keys",
            sql + (" WHERE host = %s ORDER BY role" if host else " ORDER BY host, role"),
            (host,) if host else (),
        )
        return [key_from_row(row, NATIVE_CODEC) for row in rows]

    def forget_key(self, host: str, role: str, who: str, reason: str) -> bool:
        """Drop a pin so the next contact trusts the key it meets. Audited."""
        with self._transaction(f"forget the {role} key of {host}") as cur:
            cur.execute("DELETE FROM host_keys WHERE host = %s AND role = %s", (host, role))
            gone = cur.rowcount
            if gone:
                data = {"who": who, "reason": reason, "role": role}
                self._audit(cur, "hostkey.forget", "-", host, data)
        return bool(gone)
