"""Judging a run's owner from real processes: alive, gone, a pid reused by a later process,
an owner elsewhere whose heartbeat expired, a released lease; and this process's identity."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from fleet.engine.owners import current_owner, dead_because, pid_alive, process_start
from fleet.store.base import Owner, RunLease

NOW = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
HERE = socket.gethostname()


def lease(owner: Owner, expires: datetime | None = NOW + timedelta(minutes=5)) -> RunLease:
    return RunLease("r-1", owner, 7, expires)


def test_this_process_is_alive_and_identified() -> None:
    me = current_owner("r-1")
    assert me.pid == os.getpid() and me.machine == HERE and me.run_id == "r-1"
    assert me.started == process_start(os.getpid()) and me.started is not None
    assert me.nonce and current_owner().same_process(me)
    assert dead_because(lease(me), NOW) is None


def test_a_finished_process_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    child.wait()
    assert not pid_alive(child.pid)
    owner = Owner("u", HERE, child.pid, "r-1", started, "x")
    assert dead_because(lease(owner), NOW) == f"pid {child.pid} on {HERE} is gone"


def test_a_reused_pid_is_told_apart_by_its_start_time() -> None:
    me = current_owner("r-1")
    assert me.started is not None
    earlier = Owner(me.user, HERE, me.pid, "r-1", me.started - 3600, "other")
    assert dead_because(lease(earlier), NOW) == f"pid {me.pid} on {HERE} is now another process"
    close = Owner(me.user, HERE, me.pid, "r-1", me.started + 0.5, "other")
    assert dead_because(lease(close), NOW) is None  # within the clock's slack: the same one


def test_an_owner_elsewhere_lives_until_its_heartbeat_expires() -> None:
    far = Owner("u", "other-machine.example", 1, "r-1", 5.0, "x")
    assert dead_because(lease(far, NOW + timedelta(seconds=1)), NOW) is None
    why = dead_because(lease(far, NOW - timedelta(seconds=1)), NOW)
    assert why is not None and "heartbeat expired" in why


def test_a_released_or_broken_lease_has_no_owner() -> None:
    assert dead_because(lease(current_owner("r-1"), None), NOW) == (
        "its lease was released or broken"
    )
