"""Fence checks in the PostgreSQL store: whether a holder's tokens (the run's, a host's) are
current, checked in the transaction of the write they guard.

A check locks the rows it reads ``FOR SHARE``: a takeover (``claim_run``), a broken lease or a
re-issued one must update those rows, so it waits until the guarded write commits, and a write
that waited for a takeover reads the new token and is refused. Runs are locked before leases,
everywhere, so two transactions cannot wait on each other. Tokens come from one sequence
(``lease_tokens``) for hosts and runs alike: a token never repeats.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fleet.errors import LeaseLost
from fleet.store.base import Fence, Owner
from fleet.store.rows import NATIVE_CODEC, OWNER_COLUMNS, no_run

_RUN_LEASE = f"SELECT {OWNER_COLUMNS}, lease_token, lease_expires_at FROM runs WHERE id = %s"


def run_lease(
    cur: psycopg.Cursor[Any], run_id: str, lock: str = "FOR SHARE"
) -> tuple[Owner, int | None, Any]:
    """The run's owner, lease token and lease expiry, its row locked (``lock``)."""
    row = cur.execute(f"{_RUN_LEASE} {lock}", (run_id,)).fetchone()
    if row is None:
        raise no_run(run_id)
    return Owner(*row[:6]), row[6], NATIVE_CODEC.maybe_time(row[7])


def stale_run(cur: psycopg.Cursor[Any], run_id: str, token: int) -> str:
    """Why ``token`` no longer owns the run (or "" when it still does)."""
    owner, current, expires = run_lease(cur, run_id)
    if current != token:
        return f"run taken over by {owner}"
    if expires is None:
        return "the run's lease was broken or released"
    return ""


def check_fence(cur: psycopg.Cursor[Any], fence: Fence | None) -> None:
    """Raise :class:`LeaseLost` unless the fence's tokens are still current (no fence: no
    check); the rows read stay locked until the transaction ends."""
    if fence is None:
        return
    why = stale_run(cur, fence.run_id, fence.run_token)
    if why:
        raise LeaseLost(f"run {fence.run_id}", why)
    if fence.host is None:
        return
    row = cur.execute(
        "SELECT token FROM leases WHERE host = %s FOR SHARE", (fence.host,)
    ).fetchone()
    if row is None:
        raise LeaseLost(fence.host, "broken or released")
    if row[0] != fence.host_token:
        raise LeaseLost(fence.host, "granted to another holder")
