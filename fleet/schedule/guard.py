"""Keeping a rollout inside its maintenance windows: start planning, estimates, the guard."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.clock import Clock, SystemClock, utc_iso
from fleet.errors import UsageError
from fleet.schedule.timetable import Timetable, timetable_for
from fleet.schedule.timeutil import NEXT_OPEN_HORIZON, _waiter, format_duration
from fleet.schedule.windows import Window, load_windows, parse_window
from fleet.store.base import Event, RunRecord, Store

if TYPE_CHECKING:
    from fleet.engine.journal import Journal
    from fleet.engine.leases import StopSignal
    from fleet.engine.rollout import Rollout
    from fleet.inventory import Host


@dataclass(frozen=True)
class StartPlan:
    """When work estimated to take ``need`` may start: ``start`` (None: never within the
    horizon), the end of that window (None: open-ended) and why it is not now."""

    start: datetime | None
    until: datetime | None
    reason: str


def plan_start(
    table: Timetable, now: datetime, need: timedelta, *, max_candidates: int = 1000
) -> StartPlan:
    """The first instant from ``now`` on at which ``table`` is open and stays open for
    ``need``; when no window is that long, the next opening (the best that can be done)."""
    first: StartPlan | None = None
    horizon_end = now + NEXT_OPEN_HORIZON
    for count, p in enumerate(table.periods_from(now, NEXT_OPEN_HORIZON)):
        start = max(p.start, now)
        until = None if p.end >= horizon_end else p.end
        if first is None:
            first = StartPlan(start, until, "")
        if until is None or until - start >= need:
            return StartPlan(start, until, _why(first, start, now, need))
        if count >= max_candidates:
            break
    if first is None:
        return StartPlan(None, None, f"no window opens within {format_duration(NEXT_OPEN_HORIZON)}")
    reason = f"no window is long enough for the estimated {format_duration(need)}"
    return StartPlan(first.start, first.until, reason + ": starting at the next opening")


def _why(first: StartPlan, start: datetime, now: datetime, need: timedelta) -> str:
    if start == now:
        return ""
    if first.start == now and first.until is not None:
        left = format_duration(first.until - now)
        return f"the estimated {format_duration(need)} does not fit in the {left} left"
    return "outside the maintenance window"


def host_durations(events: Iterable[Event]) -> list[float]:
    """Seconds from ``host.start`` to a successful ``host.end``, per host run, in a journal."""
    started: dict[str, datetime] = {}
    out: list[float] = []
    for e in events:
        if e.host is None:
            continue
        if e.kind == "host.start":
            started[e.host] = e.at
        elif e.kind == "host.end" and e.host in started:
            begun = started.pop(e.host)
            if e.outcome == "ok":
                out.append((e.at - begun).total_seconds())
    return out


class DurationEstimate:
    """Mean host duration from this run's journal and the latest earlier runs of the plan."""

    def __init__(self, store: Store, run: RunRecord, *, history_runs: int = 5) -> None:
        self.store = store
        self.run = run
        earlier = [
            r for r in store.list_runs(limit=100) if r.plan_name == run.plan_name and r.id != run.id
        ][:history_runs]
        self._history = [d for r in earlier for d in host_durations(store.events(r.id))]

    def host_seconds(self) -> float | None:
        samples = self._history + host_durations(self.store.events(self.run.id))
        return sum(samples) / len(samples) if samples else None

    def batch(self, size: int, concurrency: int) -> timedelta:
        """Mean host duration x waves (batch size / concurrency, rounded up); 0 if unknown."""
        mean = self.host_seconds()
        if mean is None or size <= 0:
            return timedelta(0)
        return timedelta(seconds=mean * math.ceil(size / max(concurrency, 1)))


class WindowGuard:
    """Keeps a rollout inside its maintenance windows (``Rollout.before_batch``/``before_host``).

    Before a batch (or host, with ``--window-hosts``) it estimates the time needed from past
    host durations and starts only when the window is open and that time fits in what is left
    of it; otherwise it journals ``window.wait`` and waits for the next window long enough. A
    window closing never interrupts a host in flight. The run's stop signal and the global halt
    end the wait (checked every ``poll`` seconds; a stop interrupts a real-time wait at once).
    """

    def __init__(
        self,
        windows: Sequence[Window],
        *,
        store: Store,
        journal: Journal,
        run: RunRecord,
        stop: StopSignal,
        concurrency: int,
        clock: Clock | None = None,
        wait: Callable[[float], object] | None = None,
        poll: float = 5.0,
        max_wait: timedelta = timedelta(days=35),
    ) -> None:
        self.windows = tuple(windows)
        self.store, self.journal, self.run, self.stop = store, journal, run, stop
        self.concurrency = concurrency
        self.clock: Clock = clock or SystemClock()
        self._wait = wait or _waiter(self.clock, stop.soft)
        self.poll = max(poll, 0.01)
        self.max_wait = max_wait
        self.estimate = DurationEstimate(store, run)

    def before_batch(self, index: int, batch: list[Host]) -> bool:
        need = self.estimate.batch(len(batch), self.concurrency)
        table = timetable_for(self.windows, batch)
        return self._await(table, need, f"batch {index}", None, {"batch": index})

    def before_host(self, host: Host) -> bool:
        need = self.estimate.batch(1, 1)
        table = timetable_for(self.windows, [host])
        return self._await(table, need, host.name, host.name, {})

    def _await(
        self, table: Timetable, need: timedelta, what: str, host: str | None, data: dict[str, Any]
    ) -> bool:
        deadline = self.clock.now() + self.max_wait
        data = {**data, "estimate_s": round(need.total_seconds(), 3)}
        for _ in range(100):  # each round waits for one opening; one or two are the rule
            if self._stopped():
                return False
            now = self.clock.now()
            plan = plan_start(table, now, need)
            if plan.start is None or plan.start > deadline:
                self.stop.request(f"{what}: no maintenance window before {utc_iso(deadline)}")
                return False
            if plan.start <= now:
                until = utc_iso(plan.until) if plan.until else None
                self.journal.emit("window.open", host=host, data={**data, "until": until})
                return True
            text = f"{what} waits until {utc_iso(plan.start)}: {plan.reason}"
            self.journal.emit(
                "window.wait",
                host=host,
                outcome="wait",
                excerpt=text,
                data={**data, "until": utc_iso(plan.start), "reason": plan.reason},
            )
            if not self._sleep_until(plan.start):
                return False
        return False

    def _sleep_until(self, target: datetime) -> bool:
        for _ in range(math.ceil(self.max_wait.total_seconds() / self.poll) + 2):
            if self._stopped():
                return False
            left = (target - self.clock.now()).total_seconds()
            if left <= 0:
                return True
            self._wait(min(left, self.poll))
        return False

    def _stopped(self) -> bool:
        if self.stop.soft.is_set():
            return True
        halt = self.store.halt_state()
        if halt is not None:
            self.stop.request(f"global halt by {halt.who}: {halt.reason}")
            return True
        return False


def attach_windows(
    rollout: Rollout, windows: Sequence[Window], *, hosts: bool = False, **options: Any
) -> WindowGuard:
    """Put ``rollout`` under ``windows``: batches (and hosts, if ``hosts``) wait for them."""
    guard = WindowGuard(
        windows,
        store=rollout.svc.store,
        journal=rollout.journal,
        run=rollout.run,
        stop=rollout.svc.stop,
        concurrency=rollout.options.concurrency,
        clock=rollout.clock,
        **options,
    )
    rollout.before_batch = guard.before_batch
    if hosts:
        rollout.before_host = guard.before_host
    return guard


def window_hooks(
    specs: Sequence[str], files: Sequence[str | Path], hosts: bool
) -> Callable[[Rollout], None] | None:
    """Parse ``--window`` specs and ``--windows`` files now (bad input is refused before any
    run exists); returns what puts a rollout under them, or None without windows."""
    windows = [parse_window(s) for s in specs]
    windows += [w for f in files for w in load_windows(Path(f))]
    if not windows:
        if hosts:
            raise UsageError("--window-hosts needs --window or --windows")
        return None

    def attach(rollout: Rollout) -> None:
        attach_windows(rollout, windows, hosts=hosts)

    return attach
