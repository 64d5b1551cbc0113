"""Starting a schedule's rollout: the launcher interface and the subprocess launcher."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from fleet.clock import Clock, SystemClock, utc_iso
from fleet.store.base import RunRecord, ScheduleRecord, Store


@dataclass(frozen=True)
class Launch:
    """A launched rollout: its run id once seen in the store, its process, and a note."""

    ok: bool
    run_id: str | None = None
    pid: int | None = None
    detail: str = ""


class Launcher(Protocol):
    """Starts a schedule's rollout for one due time."""

    def launch(self, schedule: ScheduleRecord, due: datetime) -> Launch: ...


class SubprocessLauncher:
    """Starts each due rollout as its own ``python -m fleet ... rollout PLAN ARGS`` process.

    A process rather than a thread: a rollout may wait days for its window, handles Ctrl-C
    itself and must outlive a scheduler restart; as a process it is an ordinary run (``fleet
    status`` shows its pid, ``fleet resume`` takes it over if it dies) and a crash of one run
    cannot take the scheduler down. Its output goes to ``log_dir``. The run id is read back from
    the store (the run whose owner is the new process).
    """

    def __init__(
        self,
        store: Store,
        *,
        log_dir: Path,
        global_args: Sequence[str] = (),
        clock: Clock | None = None,
        link_timeout: float = 30.0,
        python: str = sys.executable,
    ) -> None:
        self.store = store
        self.log_dir = log_dir
        self.global_args = tuple(global_args)
        self.clock: Clock = clock or SystemClock()
        self.link_timeout = link_timeout
        self.python = python
        self.children: list[subprocess.Popen[bytes]] = []

    def command(self, schedule: ScheduleRecord) -> list[str]:
        return [self.python, "-m", "fleet", *self.global_args, "rollout", schedule.plan]

    def launch(self, schedule: ScheduleRecord, due: datetime) -> Launch:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{schedule.name}-{due:%Y%m%dT%H%M%SZ}.log"
        env = {**os.environ, "FLEET_SCHEDULE": schedule.name, "FLEET_SCHEDULE_DUE": utc_iso(due)}
        since = self.clock.now() - timedelta(seconds=5)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [*self.command(schedule), *schedule.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C of the scheduler does not halt its runs
            )
        self.children.append(proc)
        return self._link(proc, since, log)

    def _link(self, proc: subprocess.Popen[bytes], since: datetime, log: Path) -> Launch:
        deadline = self.clock.monotonic() + self.link_timeout
        for _ in range(int(self.link_timeout / 0.05) + 2):
            exited = proc.poll()
            run = self._run_of(proc.pid, since)
            if run is not None:
                return Launch(True, run.id, proc.pid, f"log {log}")
            if exited is not None:
                tail = log.read_text(errors="replace")[-400:].strip()
                return Launch(False, None, proc.pid, f"exited {exited} before a run: {tail}")
            if self.clock.monotonic() >= deadline:
                break
            self.clock.sleep(0.05)
        return Launch(True, None, proc.pid, f"run not seen yet; log {log}")

    def _run_of(self, pid: int, since: datetime) -> RunRecord | None:
        machine = socket.gethostname()
        for run in self.store.list_runs(limit=50):
            o = run.owner
            if o.pid == pid and o.machine == machine and (run.created_at or since) >= since:
                return run
        return None

    def reap(self) -> list[int]:
        """Forget children that ended (no zombies); their exit codes."""
        ended = [p for p in self.children if p.poll() is not None]
        self.children = [p for p in self.children if p.returncode is None]
        return [int(p.returncode) for p in ended]

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every child to end (``--wait``)."""
        for proc in self.children:
            proc.wait(timeout=timeout)
        self.reap()
