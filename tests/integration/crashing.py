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
        db = fleet.state / "fleet.db"
        if db.exists():
            store = open_store(db)
            try:
                runs = store.list_runs(1)
                if runs and reached(store.events(runs[0].id)):
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.communicate(timeout=30)
                    return runs[0].id
            finally:
                store.close()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    raise AssertionError("the run never reached the moment to kill it")
