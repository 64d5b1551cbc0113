"""Leases in the SQLite store: the hosts' leases, the run's owner, and the fence checks.

Every function here runs inside a transaction the caller opened with ``BEGIN IMMEDIATE``
(:meth:`fleet.store.sqlite.SqliteStore._transaction`), so a check and the write it guards
cannot be separated by another writer. Tokens come from one counter (``lease_tokens``) for
hosts and runs alike: a token never repeats, so a stale one is always told apart.

The store holds data, not policy: whether a run's current owner is alive is the engine's
judgement (:mod:`fleet.engine.owners`); the store only refuses a claim whose expected token is
no longer the run's, and a write whose fence is no longer current.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from fleet.clock import parse_utc, utc_iso
from fleet.errors import LeaseHeld, LeaseLost, RunOwned, StoreError
from fleet.store.base import Fence, Lease, Owner, RunLease

LEASE_COLUMNS = (
    "host, owner_user, owner_machine, owner_pid, owner_run_id, owner_started, owner_nonce,"
    " token, taken_at, expires_at"
)
OWNER_COLUMNS = "owner_user, owner_machine, owner_pid, owner_run_id, owner_started, owner_nonce"
RENEW_HINT = "the host may now be touched by someone else: stop working on it"


def owner_params(owner: Owner) -> tuple[str, str, int, str | None, float | None, str | None]:
    return (owner.user, owner.machine, owner.pid, owner.run_id, owner.started, owner.nonce)


def owner_from(
    user: str,
    machine: str,
    pid: int,
    run_id: str | None,
    started: float | None = None,
    nonce: str | None = None,
) -> Owner:
    return Owner(user, machine, pid, run_id, started, nonce)


def to_ms(at: datetime) -> datetime:
    """``at`` in UTC cut to the millisecond, as stored: a returned Lease equals the stored one."""
    return parse_utc(utc_iso(at))


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise StoreError(f"a lease ttl must be positive seconds, got {ttl!r}")


def next_token(conn: sqlite3.Connection) -> int:
    (token,) = conn.execute(
        "UPDATE lease_tokens SET last = last + 1 WHERE id = 1 RETURNING last"
    ).fetchone()
    return int(token)


# -------------------------------------------------------------------------- host leases


def lease_from_row(row: tuple[Any, ...]) -> Lease:
    host, user, machine, pid, run_id, started, nonce, token, taken_at, expires_at = row
    return Lease(
        host,
        owner_from(user, machine, pid, run_id, started, nonce),
        token,
        parse_utc(taken_at),
        parse_utc(expires_at),
    )


def lease_row(conn: sqlite3.Connection, host: str) -> Lease | None:
    row = conn.execute(f"SELECT {LEASE_COLUMNS} FROM leases WHERE host = ?", (host,)).fetchone()
    return lease_from_row(row) if row else None


def held(lease: Lease) -> LeaseHeld:
    return LeaseHeld(
        lease.host, str(lease.owner), utc_iso(lease.taken_at), utc_iso(lease.expires_at)
    )


def update_expiry(conn: sqlite3.Connection, lease: Lease, expires_at: datetime) -> Lease:
    """Extend a lease in place: same token, same ``taken_at``."""
    expires_at = to_ms(expires_at)
    conn.execute(
        "UPDATE leases SET expires_at = ? WHERE host = ? AND token = ?",
        (utc_iso(expires_at), lease.host, lease.token),
    )
    return Lease(lease.host, lease.owner, lease.token, lease.taken_at, expires_at)


def grant(conn: sqlite3.Connection, host: str, owner: Owner, now: datetime, ttl: float) -> Lease:
    """Write ``host``'s lease for ``owner`` with a new token (replacing any row)."""
    token = next_token(conn)
    lease = Lease(host, owner, token, now, to_ms(now + timedelta(seconds=ttl)))
    conn.execute(
        f"INSERT OR REPLACE INTO leases ({LEASE_COLUMNS}) VALUES ({', '.join('?' * 10)})",
        (host, *owner_params(owner), token, utc_iso(now), utc_iso(lease.expires_at)),
    )
    return lease


def acquire(conn: sqlite3.Connection, host: str, owner: Owner, now: datetime, ttl: float) -> Lease:
    """Grant ``host``'s lease, renew it for its holder, or raise :class:`LeaseHeld`.

    A free or expired (``expires_at < now``) lease is granted with a new fencing token. A live
    lease held by an equal :class:`Owner` (the same process, for the same run) is extended and
    keeps its token; anyone else is refused.
    """
    current = lease_row(conn, host)
    if current is not None and current.expires_at >= now:
        if current.owner != owner:
            raise held(current)
        return update_expiry(conn, current, now + timedelta(seconds=ttl))
    return grant(conn, host, owner, now, ttl)


def renew(conn: sqlite3.Connection, lease: Lease, now: datetime, ttl: float) -> Lease:
    """Extend a lease we still hold (same token), even past its expiry if nobody took it."""
    current = lease_row(conn, lease.host)
    if current is None:
        raise StoreError(f"lease of {lease.host} was broken or released", hint=RENEW_HINT)
    if current.token != lease.token:
        raise held(current)
    return update_expiry(conn, current, now + timedelta(seconds=ttl))


# ---------------------------------------------------------------------------- run leases


def run_lease(conn: sqlite3.Connection, run_id: str) -> tuple[Owner, int | None, str | None]:
    row = conn.execute(
        f"SELECT {OWNER_COLUMNS}, lease_token, lease_expires_at FROM runs WHERE id = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        raise StoreError(f"no run {run_id!r}; `fleet status` lists runs")
    return owner_from(*row[:6]), row[6], row[7]


def claim(
    conn: sqlite3.Connection,
    run_id: str,
    owner: Owner,
    now: datetime,
    ttl: float,
    replacing: int | None,
) -> tuple[RunLease, Owner | None, list[str]]:
    """Make ``owner`` the run's owner if its token is still ``replacing``.

    Returns the new lease, the owner it took the run from (None when the run had no live
    lease or was already this process's), and the hosts whose leases were re-issued.
    """
    previous, token, expires = run_lease(conn, run_id)
    if token != replacing:
        raise RunOwned(
            f"run {run_id} is owned by {previous}, which claimed it meanwhile; one owner at a time",
            hint=f"`fleet status {run_id}` shows its owner",
        )
    until = to_ms(now + timedelta(seconds=ttl))
    lease = RunLease(run_id, owner, next_token(conn), until)
    conn.execute(
        f"UPDATE runs SET ({OWNER_COLUMNS}, lease_token, lease_expires_at) ="
        " (?, ?, ?, ?, ?, ?, ?, ?) WHERE id = ?",
        (*owner_params(owner), lease.token, utc_iso(until), run_id),
    )
    reissued = []
    rows = conn.execute(
        f"SELECT {LEASE_COLUMNS} FROM leases WHERE owner_run_id = ? ORDER BY host", (run_id,)
    ).fetchall()
    for row in rows:
        old = lease_from_row(row)
        if old.owner != owner:
            grant(conn, old.host, owner, now, ttl)
            reissued.append(old.host)
    # a live lease, or a run never claimed (its creator died first): taken from someone
    taken = (expires is not None or token is None) and not previous.same_process(owner)
    return lease, (previous if taken else None), reissued


def renew_run(conn: sqlite3.Connection, lease: RunLease, now: datetime, ttl: float) -> RunLease:
    expires = to_ms(now + timedelta(seconds=ttl))
    changed = conn.execute(
        "UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_token = ?"
        " AND lease_expires_at IS NOT NULL",
        (utc_iso(expires), lease.run_id, lease.token),
    ).rowcount
    if not changed:
        raise LeaseLost(f"run {lease.run_id}", stale_run(conn, lease.run_id, lease.token))
    return RunLease(lease.run_id, lease.owner, lease.token, expires)


def stale_run(conn: sqlite3.Connection, run_id: str, token: int) -> str:
    """Why ``token`` no longer owns the run (or "" when it still does)."""
    owner, current, expires = run_lease(conn, run_id)
    if current != token:
        return f"run taken over by {owner}"
    if expires is None:
        return "the run's lease was broken or released"
    return ""


def stale_fences(conn: sqlite3.Connection, fences: set[Fence]) -> dict[Fence, LeaseLost]:
    """The refusals of the stale ones among ``fences`` (each run and host read once)."""
    refusals: dict[Fence, LeaseLost] = {}
    runs: dict[tuple[str, int], str] = {}
    hosts: dict[str, int | None] = {}
    for fence in fences:
        run = (fence.run_id, fence.run_token)
        if run not in runs:
            runs[run] = stale_run(conn, *run)
        if runs[run]:
            refusals[fence] = LeaseLost(f"run {fence.run_id}", runs[run])
            continue
        if fence.host is None:
            continue
        if fence.host not in hosts:
            row = conn.execute("SELECT token FROM leases WHERE host = ?", (fence.host,)).fetchone()
            hosts[fence.host] = row[0] if row else None
        if hosts[fence.host] is None:
            refusals[fence] = LeaseLost(fence.host, "broken or released")
        elif hosts[fence.host] != fence.host_token:
            refusals[fence] = LeaseLost(fence.host, "granted to another holder")
    return refusals


def check_fence(conn: sqlite3.Connection, fence: Fence) -> None:
    """Raise :class:`LeaseLost` unless the fence's tokens are still current."""
    refusal = stale_fences(conn, {fence}).get(fence)
    if refusal is not None:
        raise refusal
