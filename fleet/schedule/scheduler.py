"""The scheduler loop: leader lease, one record per due time, launches."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet.clock import Clock, SystemClock, utc_iso
from fleet.errors import FleetError, LeaseHeld, StoreError
from fleet.schedule.dues import Decision, decide
from fleet.schedule.launcher import Launch, Launcher
from fleet.schedule.timeutil import _waiter
from fleet.store.base import Lease, Owner, ScheduleRecord, Store

#: The pseudo-host whose lease makes one scheduler the leader.
LEADER_LEASE = "scheduler:leader"


@dataclass(frozen=True)
class FireResult:
    """What one tick did with one schedule: started, skipped, failed, taken (another scheduler
    recorded that due time first) or halted."""

    schedule: str
    due: datetime
    action: str
    run_id: str | None = None
    detail: str = ""


def scheduler_owner() -> Owner:
    """This scheduler as a lease owner; the random tag tells two schedulers of one process
    apart (equal owners would share a lease)."""
    tag = f"scheduler-{secrets.token_hex(3)}"
    return Owner(getpass.getuser(), socket.gethostname(), os.getpid(), tag)


class Scheduler:
    """Starts due rollouts of the schedules in the store.

    Only the holder of the ``scheduler:leader`` lease acts (renewed every tick, taken over when
    it expires), and each (schedule, due time) is recorded once in the store before anything is
    launched, so two schedulers never both start one due time, even across a leader change.
    The global halt stops it from starting anything (due times passed during a halt then follow
    the missed-run policy). ``clock`` is injectable: the due logic runs on it.
    """

    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        *,
        clock: Clock | None = None,
        grace: timedelta = timedelta(minutes=5),
        lease_ttl: float = 60.0,
        owner: Owner | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.clock: Clock = clock or SystemClock()
        self.grace = grace
        self.lease_ttl = lease_ttl
        self.owner = owner or scheduler_owner()
        self._log = log or (lambda _: None)
        self._lease: Lease | None = None
        self._said: set[str] = set()

    @property
    def leading(self) -> bool:
        return self._lease is not None

    def tick(self) -> list[FireResult]:
        """One pass: lead (or not), then act on every due schedule."""
        if not self._lead():
            return []
        now = self.clock.now()
        results = []
        for schedule in self.store.list_schedules():
            if schedule.paused:
                continue
            try:
                decision = decide(schedule, now, self.grace)
            except FleetError as exc:
                self._once(f"{schedule.name}: {exc.message}")
                continue
            if decision.action == "none" or decision.due is None:
                continue
            halt = self.store.halt_state()
            if halt is not None:
                self._once(
                    f"global halt by {halt.who} ({halt.reason}): {schedule.name} not started"
                )
                results.append(FireResult(schedule.name, decision.due, "halted", None, halt.reason))
                continue
            results.append(self._act(schedule, decision.due, decision))
        return results

    def _act(self, schedule: ScheduleRecord, due: datetime, decision: Decision) -> FireResult:
        name, by = schedule.name, str(self.owner)
        outcome = "skipped" if decision.action == "skip" else "starting"
        if not self.store.record_schedule_fire(
            name, due, None, outcome=outcome, by=by, detail=decision.reason
        ):
            return FireResult(name, due, "taken", None, "recorded by another scheduler")
        if decision.action == "skip":
            self._log(f"{name}: {decision.reason}")
            return FireResult(name, due, "skipped", None, decision.reason)
        try:
            launch = self.launcher.launch(schedule, due)
        except (FleetError, OSError) as exc:
            launch = Launch(False, detail=f"cannot launch: {exc}")
        detail = "; ".join(x for x in (decision.reason, launch.detail) if x)
        final = "started" if launch.ok else "failed"
        self.store.update_schedule_fire(
            name, due, outcome=final, run_id=launch.run_id, detail=detail
        )
        self._log(f"{name}: {final} run {launch.run_id or '?'} for {utc_iso(due)}: {detail}")
        return FireResult(name, due, final, launch.run_id, detail)

    def _lead(self) -> bool:
        """Renew our leader lease, or try to take it; False when another scheduler holds it."""
        if self._lease is not None:
            try:
                self._lease = self.store.renew_lease(self._lease, self.lease_ttl)
                return True
            except StoreError as exc:  # LeaseHeld included: expired and taken over
                self._lease = None
                self._log(f"lost the scheduler lead: {exc.message}")
        try:
            self._lease = self.store.acquire_lease(LEADER_LEASE, self.owner, self.lease_ttl)
        except LeaseHeld as exc:
            self._once(f"not leading: {exc.message}")
            return False
        self._said.clear()
        self._log(f"leading as {self.owner}")
        return True

    def _once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self._log(text)

    def run(
        self,
        *,
        poll: float = 30.0,
        once: bool = False,
        stop: threading.Event | None = None,
        max_ticks: int | None = None,
    ) -> None:
        """Tick every ``poll`` seconds until ``stop`` is set (or once, or ``max_ticks``)."""
        stop = stop or threading.Event()
        wait = _waiter(self.clock, stop)
        ticks = 0
        try:
            while not stop.is_set():
                self.tick()
                reap = getattr(self.launcher, "reap", None)
                if callable(reap):
                    reap()
                ticks += 1
                if once or (max_ticks is not None and ticks >= max_ticks):
                    return
                wait(poll)
        finally:
            self.close()

    def close(self) -> None:
        """Give the lead up, so that another scheduler takes over without waiting."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            try:
                self.store.release_lease(lease)
            except StoreError as exc:
                self._log(f"cannot release the scheduler lead: {exc.message}")
