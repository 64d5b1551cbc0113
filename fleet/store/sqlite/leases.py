"""Leases in the SQLite store: the hosts' leases and the run's owner, with fencing tokens from one
counter and expiry on the store's clock.

Every read-modify-write runs in one ``BEGIN IMMEDIATE`` transaction (:meth:`_transaction`), so a
check and the write it guards cannot be separated by another writer, in this process or another.
The store holds data, not policy: whether a run's current owner is alive is the engine's
judgement (:mod:`fleet.engine.owners`); the store only refuses a claim whose expected token is
no longer the run's, and a write whose fence is no longer current
(:mod:`fleet.store.sqlite.fencing`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from fleet.clock import utc_iso
from fleet.errors import LeaseLost
from fleet.store.base import Fence, Lease, Owner, RunLease
from fleet.store.rows import (
    LEASE_COLUMNS,
    OWNER_COLUMNS,
    TEXT_CODEC,
    check_ttl,
    held,
    lease_from_row,
    lease_gone,
    owner_params,
    to_ms,
)
from fleet.store.rules import LeaseRules
from fleet.store.sqlite.core import SqliteCore
from fleet.store.sqlite.fencing import check_fence, next_token, run_lease, stale_run


class SqliteLeases(SqliteCore, LeaseRules[sqlite3.Connection]):
    """Per-host leases and the run's lease, with fencing tokens (the run's claim:
    :class:`~fleet.store.rules.LeaseRules`)."""

    # ---------------------------------------------------------------- host leases

    def acquire_lease(
        self, host: str, owner: Owner, ttl: float, *, fence: Fence | None = None
    ) -> Lease:
        """Grant ``host``'s lease, renew it for its holder, or raise :class:`LeaseHeld`.

        A free or expired (``expires_at < now``) lease is granted with a new fencing token.
        A live lease held by an equal :class:`Owner` (the same process, for the same run) is
        extended and keeps its token; anyone else is refused. With ``fence``, only for the
        run's current owner (else :class:`LeaseLost`).
        """
        check_ttl(ttl)
        with self._transaction(f"take the lease of {host}") as conn:
            check_fence(conn, fence)
            now = to_ms(self._clock.now())
            current = _lease_row(conn, host)
            if current is not None and current.expires_at >= now:
                if current.owner != owner:
                    raise held(current)
                return _update_expiry(conn, current, now + timedelta(seconds=ttl))
            return _grant(conn, host, owner, now, ttl)

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease we still hold (same token), even past its expiry if nobody took it;
        raise :class:`LeaseHeld` naming the new holder, or StoreError when it was broken."""
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

    def _delete_lease(self, conn: sqlite3.Connection, host: str) -> Lease | None:
        current = _lease_row(conn, host)
        if current is not None:
            conn.execute("DELETE FROM leases WHERE host = ?", (host,))
        return current

    # ------------------------------------------------------------------ run lease

    def _run_lease(
        self, conn: sqlite3.Connection, run_id: str
    ) -> tuple[Owner, int | None, datetime | None]:
        owner, token, expires = run_lease(conn, run_id)
        return owner, token, TEXT_CODEC.maybe_time(expires)

    def _set_run_owner(
        self, conn: sqlite3.Connection, run_id: str, owner: Owner, ttl: float
    ) -> RunLease:
        until = to_ms(to_ms(self._clock.now()) + timedelta(seconds=ttl))
        lease = RunLease(run_id, owner, next_token(conn), until)
        conn.execute(
            f"UPDATE runs SET ({OWNER_COLUMNS}, lease_token, lease_expires_at) ="
            " (?, ?, ?, ?, ?, ?, ?, ?) WHERE id = ?",
            (*owner_params(owner), lease.token, utc_iso(until), run_id),
        )
        return lease

    def _run_host_leases(self, conn: sqlite3.Connection, run_id: str) -> list[Lease]:
        rows = conn.execute(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE owner_run_id = ? ORDER BY host", (run_id,)
        ).fetchall()
        return [lease_from_row(row, TEXT_CODEC) for row in rows]

    def _reissue(self, conn: sqlite3.Connection, host: str, owner: Owner, ttl: float) -> None:
        _grant(conn, host, owner, to_ms(self._clock.now()), ttl)

    def renew_run(self, lease: RunLease, ttl: float) -> RunLease:
        """Push the run lease's expiry; raise LeaseLost when it is no longer ours."""
        check_ttl(ttl)
        with self._transaction(f"renew the lease of run {lease.run_id}") as conn:
            expires = to_ms(self._clock.now() + timedelta(seconds=ttl))
            changed = conn.execute(
                "UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_token = ?"
                " AND lease_expires_at IS NOT NULL",
                (utc_iso(expires), lease.run_id, lease.token),
            ).rowcount
            if not changed:
                raise LeaseLost(f"run {lease.run_id}", stale_run(conn, lease.run_id, lease.token))
            return RunLease(lease.run_id, lease.owner, lease.token, expires)

    def release_run(self, lease: RunLease) -> None:
        """Give the run up (a no-op if it is no longer ours)."""
        self._write(
            f"release run {lease.run_id}",
            "UPDATE runs SET lease_expires_at = NULL WHERE id = ? AND lease_token = ?",
            (lease.run_id, lease.token),
        )

    def _end_run_lease(self, conn: sqlite3.Connection, run_id: str) -> None:
        conn.execute("UPDATE runs SET lease_expires_at = NULL WHERE id = ?", (run_id,))


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


def _grant(conn: sqlite3.Connection, host: str, owner: Owner, now: datetime, ttl: float) -> Lease:
    """Write ``host``'s lease for ``owner`` with a new token (replacing any row)."""
    lease = Lease(host, owner, next_token(conn), now, to_ms(now + timedelta(seconds=ttl)))
    conn.execute(
        f"INSERT OR REPLACE INTO leases ({LEASE_COLUMNS}) VALUES ({', '.join('?' * 10)})",
        (host, *owner_params(owner), lease.token, utc_iso(now), utc_iso(lease.expires_at)),
    )
    return lease
