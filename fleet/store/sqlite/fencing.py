"""Fence checks in the SQLite store: whether a holder's tokens (the run's, a host's) are current.

Every function here runs inside a transaction the caller opened with ``BEGIN IMMEDIATE``
(:meth:`~fleet.store.sqlite.core.SqliteCore._transaction`, or the journal's group commit), so a
check and the write it guards cannot be separated by another writer. Tokens come from one
counter (``lease_tokens``) for hosts and runs alike: a token never repeats, so a stale one is
always told apart.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fleet.errors import LeaseLost, StoreError
from fleet.store.base import Fence, Owner
from fleet.store.rows import EVENT_INSERT_COLUMNS, OWNER_COLUMNS, no_run

#: An event row written only when its fence (if any) is current: checked by SQLite itself, row
#: by row, in the batch's one statement. Parameters: the row, then :func:`fence_params`.
INSERT_FENCED = (
    f"INSERT INTO events ({EVENT_INSERT_COLUMNS}) SELECT {', '.join('?' * 11)} WHERE ? = 0 OR ("
    "EXISTS (SELECT 1 FROM runs WHERE id = ? AND lease_token = ?"
    " AND lease_expires_at IS NOT NULL)"
    " AND (? IS NULL OR EXISTS (SELECT 1 FROM leases WHERE host = ? AND token = ?)))"
)

#: One queued event: its ticket, its row and its fence.
Item = tuple[int, tuple[Any, ...], Fence | None]


def next_token(conn: sqlite3.Connection) -> int:
    (token,) = conn.execute(
        "UPDATE lease_tokens SET last = last + 1 WHERE id = 1 RETURNING last"
    ).fetchone()
    return int(token)


def run_lease(conn: sqlite3.Connection, run_id: str) -> tuple[Owner, int | None, str | None]:
    """The run's owner, lease token and lease expiry (text)."""
    row = conn.execute(
        f"SELECT {OWNER_COLUMNS}, lease_token, lease_expires_at FROM runs WHERE id = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        raise no_run(run_id)
    return Owner(*row[:6]), row[6], row[7]


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


def check_fence(conn: sqlite3.Connection, fence: Fence | None) -> None:
    """Raise :class:`LeaseLost` unless the fence's tokens are still current (no fence: no check)."""
    if fence is None:
        return
    refusal = stale_fences(conn, {fence}).get(fence)
    if refusal is not None:
        raise refusal


def fence_params(fence: Fence | None) -> tuple[Any, ...]:
    if fence is None:
        return (0, None, None, None, None, None)
    return (1, fence.run_id, fence.run_token, fence.host, fence.host, fence.host_token)


def insert_batch(conn: sqlite3.Connection, items: list[Item]) -> dict[int, int | LeaseLost]:
    """Insert a batch's rows whose fences are current, in one statement (SQLite checks each
    row's fence); each ticket's seq, or the refusal of its stale fence."""
    cursor = conn.executemany(INSERT_FENCED, [row + fence_params(f) for _, row, f in items])
    written = cursor.rowcount
    refusals: dict[Fence, LeaseLost] = {}
    if written != len(items):  # some fence was stale (rare): tell which, in this transaction
        refusals = stale_fences(conn, {f for _, _, f in items if f is not None})
    outcomes: dict[int, int | LeaseLost] = {}
    valid = []
    for ticket, _, fence in items:
        refusal = refusals.get(fence) if fence is not None else None
        if refusal is not None:  # one exception per caller: each thread raises its own
            outcomes[ticket] = LeaseLost(refusal.what, refusal.why)
        else:
            valid.append(ticket)
    if len(valid) != written:
        raise StoreError(f"{len(valid)} of {len(items)} events were expected to be written")
    if valid:
        # one writer at a time (BEGIN IMMEDIATE): the rows got consecutive rowids
        (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
        first = int(last) - len(valid) + 1
        outcomes.update({ticket: first + i for i, ticket in enumerate(valid)})
    return outcomes
