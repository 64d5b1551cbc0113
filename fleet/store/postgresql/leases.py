"""Host leases in the PostgreSQL store: tokens from a sequence, expiry on the server's clock.

Each operation is one transaction. A grant locks the lease row it reads (``FOR UPDATE``) and,
when the host had no row, inserts with ``ON CONFLICT ... WHERE expired``, so two operators
granting the same free host at once cannot both win. ``now()`` is the server's: a client whose
clock runs fast or slow neither steals a live lease nor keeps an expired one.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fleet.store.base import Lease, Owner
from fleet.store.postgresql.core import PgCore
from fleet.store.rows import (
    LEASE_COLUMNS,
    NATIVE_CODEC,
    check_ttl,
    held,
    lease_from_row,
    lease_gone,
    owner_params,
)

_SELECT = f"SELECT {LEASE_COLUMNS}, expires_at >= now() FROM leases WHERE host = %s FOR UPDATE"
_GRANT = (
    f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, nextval('lease_tokens'),"
    " now(), now() + make_interval(secs => %s))"
    " ON CONFLICT (host) DO UPDATE SET owner_user = excluded.owner_user,"
    " owner_machine = excluded.owner_machine, owner_pid = excluded.owner_pid,"
    " owner_run_id = excluded.owner_run_id, token = excluded.token,"
    " taken_at = excluded.taken_at, expires_at = excluded.expires_at"
    f" WHERE leases.expires_at < now() RETURNING {LEASE_COLUMNS}"
)
_EXTEND = (
    "UPDATE leases SET expires_at = now() + make_interval(secs => %s)"
    f" WHERE host = %s AND token = %s RETURNING {LEASE_COLUMNS}"
)


class PgLeases(PgCore):
    """Per-host leases with fencing tokens."""

    def acquire_lease(self, host: str, owner: Owner, ttl: float) -> Lease:
        """Grant ``host``'s lease, renew it for its holder, or raise :class:`LeaseHeld`.

        A free or expired (``expires_at < now()``) lease is granted with a new fencing token.
        A live lease held by an equal :class:`Owner` (the same process and run) is extended and
        keeps its token; anyone else is refused.
        """
        check_ttl(ttl)
        with self._transaction(f"take the lease of {host}") as cur:
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

    def break_lease(self, host: str, who: str, reason: str) -> Lease | None:
        """Delete ``host``'s lease whoever holds it, and journal who did it and why."""
        with self._transaction(f"break the lease of {host}") as cur:
            row = cur.execute(
                f"DELETE FROM leases WHERE host = %s RETURNING {LEASE_COLUMNS}", (host,)
            ).fetchone()
            if row is None:
                return None
            current = lease_from_row(row, NATIVE_CODEC)
            data = {
                "who": who,
                "reason": reason,
                "owner": str(current.owner),
                "token": current.token,
            }
            self._audit(cur, "lease.break", current.owner.run_id or "-", host, data)
            return current


def _extend(cur: psycopg.Cursor[Any], lease: Lease, ttl: float) -> Lease:
    """Push a live lease's expiry to now + ttl: same token, same ``taken_at``."""
    row = cur.execute(_EXTEND, (ttl, lease.host, lease.token)).fetchone()
    assert row is not None, "the row is locked by this transaction"
    return lease_from_row(row, NATIVE_CODEC)
