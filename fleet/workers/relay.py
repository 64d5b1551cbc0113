"""The controller's live output when pipelines run on workers.

In-process, the pipelines write the journal through the controller's :class:`Journal`, whose
observers (live view, plain lines, JSON) see each event as it is written. On workers the events
reach the store only; the relay reads back the events of the hosts in flight and hands them to
the same observers, so the operator sees the same lines. Events of a host are all relayed
before the controller counts the host's result (:meth:`EventRelay.unwatch`), so they come
before the batch's and the run's end.
"""

from __future__ import annotations

import threading

from fleet.engine.journal import Journal, Observer
from fleet.store.base import Event, Store
from fleet.transport.base import CommandResult

#: Seconds between reads of the hosts in flight.
POLL = 1.0


class EventRelay:
    """Takes the journal's observers and feeds them both the controller's events and, read from
    the store, the workers'. Build it on the controller's journal; :meth:`close` at the end."""

    def __init__(self, journal: Journal, store: Store) -> None:
        self.store, self.run_id = store, journal.run_id
        self.targets: list[Observer] = list(journal.observers)
        journal.observers = [self]
        self._seen: dict[str, set[int]] = {}  # per host in flight: seqs already handed on
        self._lock = threading.Lock()  # one event at a time, in one thread at a time
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="fleet-relay", daemon=True)
        self._thread.start()

    # -- the controller's own events (the journal calls these) -------------------------------
    def event(self, event: Event) -> None:
        with self._lock:
            if event.host in self._seen and event.seq is not None:
                self._seen[event.host].add(event.seq)
            for target in self.targets:
                target.event(event)

    def output(self, host: str, step: str, result: CommandResult) -> None:
        with self._lock:
            for target in self.targets:
                target.output(host, step, result)

    # -- the workers' events -------------------------------------------------------------------
    def watch(self, host: str) -> None:
        """Relay ``host``'s events from now on (those of earlier executions are not shown)."""
        earlier = {e.seq for e in self.store.events(self.run_id, host) if e.seq is not None}
        with self._lock:
            self._seen[host] = earlier

    def unwatch(self, host: str) -> None:
        """Relay what is left of ``host``'s events, then stop reading them."""
        self._catch_up(host)
        with self._lock:
            self._seen.pop(host, None)

    def _catch_up(self, host: str) -> None:
        events = self.store.events(self.run_id, host)
        with self._lock:
            seen = self._seen.get(host)
            if seen is None:
                return
            for e in sorted(events, key=lambda e: e.seq or 0):
                if e.seq is not None and e.seq not in seen:
                    seen.add(e.seq)
                    for target in self.targets:
                        target.event(e)

    def _poll(self) -> None:
        while not self._done.wait(POLL):
            with self._lock:
                hosts = list(self._seen)
            for host in hosts:
                self._catch_up(host)

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
