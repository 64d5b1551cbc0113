"""Helpers of the crash and ownership tests: kill fleet at a moment its journal shows."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from fleet.store import open_store
from fleet.store.base import Event
from tests.conftest import FleetCli


def kill_when(
    fleet: FleetCli,
    proc: subprocess.Popen[str],
    reached: Callable[[list[Event]], bool],
    timeout: float = 90,
) -> str:
    """SIGKILL ``proc`` as soon as its run's journal satisfies ``reached``; returns the run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        run_id = run_reached(fleet, reached)
        if run_id:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
            return run_id
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    raise AssertionError("the run never reached the moment to kill it")


def run_reached(fleet: FleetCli, reached: Callable[[list[Event]], bool]) -> str | None:
    """The last run's id once its journal satisfies ``reached`` (None before)."""
    last = last_run_events(fleet)
    return last[0] if last is not None and reached(last[1]) else None


def last_run_events(fleet: FleetCli) -> tuple[str, list[Event]] | None:
    """The id and journal of the state directory's last run, if any yet."""
    db = fleet.state / "fleet.db"
    if not db.exists():
        return None
    store = open_store(db)
    try:
        runs = store.list_runs(1)
        return (runs[0].id, store.events(runs[0].id)) if runs else None
    finally:
        store.close()
