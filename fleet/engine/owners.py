"""Who owns a run: this process's identity, whether another owner still lives, and claiming.

A run has one live owner at a time, the process holding its run lease (a fencing token in the
store). Starting or resuming a run claims it: a live owner is never displaced (the claim is
refused, naming it); a dead one is taken over and the takeover is journaled. Dead means:

* on this machine: its pid is gone, or now belongs to a process that started later (the
  owner's recorded start time tells a reused pid apart);
* on another machine, where its pid cannot be looked at: its heartbeat expired;
* anywhere: its lease was released (the run ended or halted) or broken by an operator
  (``fleet leases break --run RUN``), which is how a live but stuck owner is displaced.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from datetime import datetime
from functools import cache

from fleet.clock import utc_iso
from fleet.errors import RunOwned
from fleet.store.base import Owner, RunLease, RunRecord, Store

#: Drawn once per process: two owners are the same process only if their nonces agree.
NONCE = secrets.token_hex(4)
#: How far apart two readings of one process's start time may be (the kernel's boot time,
#: from which it is computed, moves when the wall clock is stepped).
_START_SLACK = 1.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from ``/proc``; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return round(_boot_time() + ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


@cache
def _me() -> tuple[str, str, int, float | None]:
    return getpass.getuser(), socket.gethostname(), os.getpid(), process_start(os.getpid())


def current_owner(run_id: str | None = None) -> Owner:
    """This process, acting for ``run_id``."""
    user, machine, pid, started = _me()
    if pid != os.getpid():  # forked since: a new process, a new identity
        _me.cache_clear()
        user, machine, pid, started = _me()
    return Owner(user, machine, pid, run_id, started, NONCE)


def dead_because(lease: RunLease, now: datetime) -> str | None:
    """Why the owner of ``lease`` is taken for dead, or None while it may live."""
    owner = lease.owner
    if lease.expires_at is None:
        return "its lease was released or broken"
    if owner.machine == socket.gethostname():
        if not pid_alive(owner.pid):
            return f"pid {owner.pid} on {owner.machine} is gone"
        if _other_process(owner.started, process_start(owner.pid)):
            return f"pid {owner.pid} on {owner.machine} is now another process"
        return None
    if lease.expires_at < now:
        return f"its heartbeat expired at {utc_iso(lease.expires_at)}"
    return None


def _other_process(recorded: float | None, now: float | None) -> bool:
    """Whether a pid's start time now differs from the one recorded (the pid was reused)."""
    return recorded is not None and now is not None and abs(now - recorded) > _START_SLACK


def claim_run(store: Store, run: RunRecord, ttl: float, now: datetime) -> RunLease:
    """Make this process the run's one live owner, or raise :class:`RunOwned` naming the live
    owner. Taking over from a dead one re-issues the run's host leases and is journaled."""
    me = current_owner(run.id)
    lease = run.lease
    if lease is None:  # never claimed (created by an older fleet, or its creator died first)
        return store.claim_run(run.id, me, ttl, replacing=None, why="the run had no owner")
    if lease.owner.same_process(me) and lease.expires_at is not None:
        return lease
    why = dead_because(lease, now)
    if why is None:
        raise RunOwned(
            f"run {run.id} is owned by {lease.owner}, which is alive; one owner at a time",
            hint="wait for it to end; if it is stuck, "
            f"`fleet leases break --run {run.id} --reason ...` first",
        )
    return store.claim_run(run.id, me, ttl, replacing=lease.token, why=why)
