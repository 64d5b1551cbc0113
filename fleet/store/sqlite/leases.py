"""Host leases in the SQLite store: fencing tokens from one counter, expiry on the store's clock.

Every read-modify-write runs in one ``BEGIN IMMEDIATE`` transaction (:meth:`_transaction`), so a
check and the write it guards cannot be separated by another writer, in this process or another.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from fleet.clock import utc_iso
from fleet.store.base import Lease, Owner
from fleet.store.rows import (
    LEASE_COLUMNS,
    TEXT_CODEC,
    check_ttl,
    held,
    lease_from_row,
    lease_gone,
    owner_params,
    to_ms,
)
from fleet.store.sqlite.core import SqliteCore


class SqliteLeases(SqliteCore):
    """Per-host leases with fencing tokens."""

    def acquire_lease(self, host: str, owner: Owner, ttl: float) -> Lease:
        """Grant ``host``'s lease, renew it for its holder, or raise :class:`LeaseHeld`.

        A free or expired (``expires_at < now``) lease is granted with a new fencing token.
        A live lease held by an equal :class:`Owner` (same user, machine, pid and run: the same
        process) is extended and keeps its token; anyone else is refused.
        """
        check_ttl(ttl)
        with self._transaction(f"take the lease of {host}") as conn:
            now = to_ms(self._clock.now())
            current = _lease_row(conn, host)
            if current is not None and current.expires_at >= now:
                if current.owner != owner:
                    raise held(current)
                return _update_expiry(conn, current, now + timedelta(seconds=ttl))
            (token,) = conn.execute(
                "UPDATE lease_tokens SET last = last + 1 WHERE id = 1 RETURNING last"
            ).fetchone()
            lease = Lease(host, owner, token, now, to_ms(now + timedelta(seconds=ttl)))
            conn.execute(
                f"INSERT OR REPLACE INTO leases ({LEASE_COLUMNS}) VALUES ({', '.join('?' * 8)})",
                (host, *owner_params(owner), token, utc_iso(now), utc_iso(lease.expires_at)),
            )
            return lease

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease we still hold (same token), even past its expiry if nobody took it."""
        check_ttl(ttl)
        with self._transaction(f"renew the lease of {lease.host}") as conn:
            current = _lease_row(conn, lease.host)
            if current is None:
                raise lease_gone(lease.host)
            if current.token != lease.token:
                raise held(current)
            now = to_ms(self._clock.now())
            return _update_expiry(conn, current, now + timedelta(seconds=ttl))

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
        return [lease_from_row(row, TEXT_CODEC) for row in rows]

    def break_lease(self, host: str, who: str, reason: str) -> Lease | None:
        """Delete ``host``'s lease whoever holds it, and journal who did it and why."""
        with self._transaction(f"break the lease of {host}") as conn:
            current = _lease_row(conn, host)
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


def _lease_row(conn: sqlite3.Connection, host: str) -> Lease | None:
    row = conn.execute(f"SELECT {LEASE_COLUMNS} FROM leases WHERE host = ?", (host,)).fetchone()
    return lease_from_row(row, TEXT_CODEC) if row else None


def _update_expiry(conn: sqlite3.Connection, lease: Lease, expires_at: datetime) -> Lease:
    """Extend a lease in place: same token, same ``taken_at``."""
    expires_at = to_ms(expires_at)
    conn.execute(
        "UPDATE leases SET expires_at = ? WHERE host = ? AND token = ?",
        (utc_iso(expires_at), lease.host, lease.token),
    )
    return Lease(lease.host, lease.owner, lease.token, lease.taken_at, expires_at)
