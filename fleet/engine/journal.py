"""The journal: every transition is written to the store, then shown to observers.

Writing happens *before* and *after* each step, so that after a crash ``fleet resume`` knows which
steps finished (skip them), which were interrupted (re-check them) and which never started.

Writes carry the writer's fence (:class:`~fleet.store.base.Fence`): the run's lease token, and a
host's for the events of that host. A stale holder's write is refused
(:class:`~fleet.errors.LeaseLost`), so the journal only ever tells what the run's live owner did.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from fleet.clock import Clock, SystemClock
from fleet.store.base import Event, Fence, Store
from fleet.transport.base import CommandResult


class Observer(Protocol):
    """Receives journal events as they are written (live view, plain lines, JSON stream)."""

    def event(self, event: Event) -> None: ...

    def output(self, host: str, step: str, result: CommandResult) -> None:
        """A step's full output (not journaled beyond an excerpt)."""
        ...


class Journal:
    """Writes events of one run to the store and fans them out to observers."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        observers: list[Observer] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.observers = list(observers or [])
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()  # observers are not required to be thread-safe

    #: The run's fence (set once this process owns the run); events carry it unless they
    #: name their own (a host's) or are written ``unfenced`` (a stale holder's last word).
    fence: Fence | None = None

    def emit(
        self, kind: str, *, fence: Fence | None = None, unfenced: bool = False, **fields: Any
    ) -> Event:
        event = Event(run_id=self.run_id, kind=kind, at=self.clock.now(), **fields)
        proof = None if unfenced else (fence or self.fence)
        seq = self.store.record(event, proof)
        # The event is this call's own until it returns: its seq is set in place (replace()
        # would build it again, thousands of times a rollout).
        object.__setattr__(event, "seq", seq)
        if self.observers:
            with self._lock:
                for observer in self.observers:
                    observer.event(event)
        return event

    def output(self, host: str, step: str, result: CommandResult) -> None:
        if self.observers:
            with self._lock:
                for observer in self.observers:
                    observer.output(host, step, result)


def progress_of(events: list[Event]) -> dict[str, dict[str, str]]:
    """Per host, the last outcome of each step key ("started", "converged", "applied", "failed")
    and of the host itself (key ``""``: "ok", "failed", "stopped", "skipped")."""
    out: dict[str, dict[str, str]] = {}
    for e in events:
        if e.host is None:
            continue
        steps = out.setdefault(e.host, {})
        if e.kind == "step.start" and e.step:
            steps[f"{e.stage}/{e.step}"] = "started"
        elif e.kind == "step.end" and e.step:
            steps[f"{e.stage}/{e.step}"] = e.outcome or "ended"
        elif e.kind == "host.end":
            steps[""] = e.outcome or "ended"
        elif e.kind == "host.start":
            steps[""] = "running"
    return out
