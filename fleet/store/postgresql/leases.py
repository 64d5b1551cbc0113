"""Leases in the PostgreSQL store: the hosts' leases and the run's owner, with tokens from a
sequence and expiry on the server's clock.

Each operation is one transaction. A grant locks the lease row it reads (``FOR UPDATE``) and,
when the host had no row, inserts with ``ON CONFLICT ... WHERE expired``, so two operators
granting the same free host at once cannot both win. A claim of the run locks the run's row,
then its hosts' leases (runs before leases, as every fence check does:
:mod:`fleet.store.postgresql.fencing`). ``now()`` is the server's: a client whose clock runs
fast or slow neither steals a live lease nor keeps an expired one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from fleet.errors import LeaseLost
from fleet.store.base import Fence, Lease, Owner, RunLease
from fleet.store.postgresql.core import PgCore
from fleet.store.postgresql.fencing import check_fence, run_lease, stale_run
from fleet.store.rows import (
    LEASE_COLUMNS,
    NATIVE_CODEC,
    OWNER_COLUMNS,
    check_ttl,
    held,
    lease_from_row,
    lease_gone,
    owner_params,
)
from fleet.store.rules import LeaseRules

_OWNER_SET = ", ".join(f"{c} = excluded.{c}" for c in OWNER_COLUMNS.split(", "))
_SELECT = f"SELECT {LEASE_COLUMNS}, expires_at >= now() FROM leases WHERE host = %s FOR UPDATE"
_GRANT = (
    f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s,"
    " nextval('lease_tokens'), now(), now() + make_interval(secs => %s))"
    f" ON CONFLICT (host) DO UPDATE SET {_OWNER_SET}, token = excluded.token,"
    " taken_at = excluded.taken_at, expires_at = excluded.expires_at"
    f" WHERE leases.expires_at < now() RETURNING {LEASE_COLUMNS}"
)
#: A run's host lease re-issued to the run's new owner, with a new token.
_REISSUE = (
    f"UPDATE leases SET ({OWNER_COLUMNS}, token, taken_at, expires_at) = (%s, %s, %s, %s, %s, %s,"
    " nextval('lease_tokens'), now(), now() + make_interval(secs => %s)) WHERE host = %s"
)
_EXTEND = (
    "UPDATE leases SET expires_at = now() + make_interval(secs => %s)"
    f" WHERE host = %s AND token = %s RETURNING {LEASE_COLUMNS}"
)
_CLAIM = (
    f"UPDATE runs SET ({OWNER_COLUMNS}, lease_token, lease_expires_at) = (%s, %s, %s, %s, %s, %s,"
    " nextval('lease_tokens'), now() + make_interval(secs => %s)) WHERE id = %s"
    " RETURNING lease_token, lease_expires_at"
)


class PgLeases(PgCore, LeaseRules[psycopg.Cursor[Any]]):
    """Per-host leases and the run's lease, with fencing tokens (the run's claim:
    :class:`~fleet.store.rules.LeaseRules`)."""

    # ---------------------------------------------------------------- host leases

    def acquire_lease(
        self, host: str, owner: Owner, ttl: float, *, fence: Fence | None = None
    ) -> Lease:
        """Grant ``host``'s lease, renew it for its holder, or raise :class:`LeaseHeld`.

        A free or expired (``expires_at < now()``) lease is granted with a new fencing token.
        A live lease held by an equal :class:`Owner` (the same process and run) is extended and
        keeps its token; anyone else is refused. With ``fence``, only for the run's current
        owner (else :class:`LeaseLost`).
        """
        check_ttl(ttl)
        with self._transaction(f"take the lease of {host}") as cur:
            check_fence(cur, fence)
            for _ in range(2):  # a grant that lost a race reads the winner's row again
                row = cur.execute(_SELECT, (host,)).fetchone()
                if row is not None and row[-1]:
                    current = lease_from_row(row[:-1], NATIVE_CODEC)
                    if current.owner != owner:
                        raise held(current)
                    return _extend(cur, current, ttl)
                granted = cur.execute(_GRANT, (host, *owner_params(owner), ttl)).fetchone()
                if granted is not None:
                    return lease_from_row(granted, NATIVE_CODEC)
        raise AssertionError(f"{host}: lease neither granted nor held")

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease we still hold (same token), even past its expiry if nobody took it."""
        check_ttl(ttl)
        with self._transaction(f"renew the lease of {lease.host}") as cur:
            renewed = cur.execute(_EXTEND, (ttl, lease.host, lease.token)).fetchone()
            if renewed is not None:
                return lease_from_row(renewed, NATIVE_CODEC)
            row = cur.execute(_SELECT, (lease.host,)).fetchone()
            if row is None:
                raise lease_gone(lease.host)
            raise held(lease_from_row(row[:-1], NATIVE_CODEC))

    def release_lease(self, lease: Lease) -> None:
        """Give the lease up; a no-op if it is no longer ours (token changed)."""
        self._write(
            f"release the lease of {lease.host}",
            "DELETE FROM leases WHERE host = %s AND token = %s",
            (lease.host, lease.token),
        )

    def list_leases(self) -> list[Lease]:
        """Every lease row, expired ones included (compare ``expires_at`` to tell)."""
        rows = self._read("list leases", f"SELECT {LEASE_COLUMNS} FROM leases ORDER BY host")
        return [lease_from_row(row, NATIVE_CODEC) for row in rows]

    def _delete_lease(self, cur: psycopg.Cursor[Any], host: str) -> Lease | None:
        row = cur.execute(
            f"DELETE FROM leases WHERE host = %s RETURNING {LEASE_COLUMNS}", (host,)
        ).fetchone()
        return None if row is None else lease_from_row(row, NATIVE_CODEC)

    # ------------------------------------------------------------------ run lease

    def _run_lease(
        self, cur: psycopg.Cursor[Any], run_id: str
    ) -> tuple[Owner, int | None, datetime | None]:
        return run_lease(cur, run_id, "FOR UPDATE")

    def _set_run_owner(
        self, cur: psycopg.Cursor[Any], run_id: str, owner: Owner, ttl: float
    ) -> RunLease:
        claimed = cur.execute(_CLAIM, (*owner_params(owner), ttl, run_id)).fetchone()
        assert claimed is not None, "the row is locked by this transaction"
        return RunLease(run_id, owner, claimed[0], NATIVE_CODEC.time(claimed[1]))

    def _run_host_leases(self, cur: psycopg.Cursor[Any], run_id: str) -> list[Lease]:
        rows = cur.execute(
            f"SELECT {LEASE_COLUMNS} FROM leases WHERE owner_run_id = %s ORDER BY host FOR UPDATE",
            (run_id,),
        ).fetchall()
        return [lease_from_row(row, NATIVE_CODEC) for row in rows]

    def _reissue(self, cur: psycopg.Cursor[Any], host: str, owner: Owner, ttl: float) -> None:
        cur.execute(_REISSUE, (*owner_params(owner), ttl, host))

    def renew_run(self, lease: RunLease, ttl: float) -> RunLease:
        """Push the run lease's expiry; raise LeaseLost when it is no longer ours."""
        check_ttl(ttl)
        with self._transaction(f"renew the lease of run {lease.run_id}") as cur:
            row = cur.execute(
                "UPDATE runs SET lease_expires_at = now() + make_interval(secs => %s)"
                " WHERE id = %s AND lease_token = %s AND lease_expires_at IS NOT NULL"
                " RETURNING lease_expires_at",
                (ttl, lease.run_id, lease.token),
            ).fetchone()
            if row is None:
                raise LeaseLost(f"run {lease.run_id}", stale_run(cur, lease.run_id, lease.token))
            return RunLease(lease.run_id, lease.owner, lease.token, NATIVE_CODEC.time(row[0]))

    def release_run(self, lease: RunLease) -> None:
        """Give the run up (a no-op if it is no longer ours)."""
        self._write(
            f"release run {lease.run_id}",
            "UPDATE runs SET lease_expires_at = NULL WHERE id = %s AND lease_token = %s",
            (lease.run_id, lease.token),
        )

    def _end_run_lease(self, cur: psycopg.Cursor[Any], run_id: str) -> None:
        cur.execute("UPDATE runs SET lease_expires_at = NULL WHERE id = %s", (run_id,))


def _extend(cur: psycopg.Cursor[Any], lease: Lease, ttl: float) -> Lease:
    """Push a live lease's expiry to now + ttl: same token, same ``taken_at``."""
    row = cur.execute(_EXTEND, (ttl, lease.host, lease.token)).fetchone()
    assert row is not None, "the row is locked by this transaction"
    return lease_from_row(row, NATIVE_CODEC)
