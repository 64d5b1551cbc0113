"""Hearing the global halt while a rollout runs.

The controller reads the switch before every batch and every host; that alone leaves a rollout
deaf while a batch is in flight, a bake or a maintenance window is awaited. A :class:`HaltWatch`
waits on the store meanwhile (:meth:`fleet.store.base.Store.wait_halt`: PostgreSQL's LISTEN/NOTIFY,
SQLite's polling), so that within about a second of ``fleet halt`` anywhere the rollout stops
starting hosts, its pipelines stop before their next step, and the journal says why.
"""

from __future__ import annotations

import logging
import threading

from fleet.clock import utc_iso
from fleet.engine.journal import Journal
from fleet.engine.leases import StopSignal
from fleet.errors import FleetError, LeaseLost
from fleet.store.base import HaltState, Store

log = logging.getLogger(__name__)

#: Each wait on the store lasts at most this long, so that :meth:`HaltWatch.close` is prompt:
#: the rollout's end waits for the watch's last read, up to this long (SQLite's own poll
#: period; PostgreSQL listens in between).
WAIT = 0.25


def halt_reason(halt: HaltState) -> str:
    """The reason a run halted by the global switch gives."""
    return f"global halt by {halt.who}: {halt.reason}"


class HaltWatch:
    """A thread that requests a soft stop as soon as the global halt is set (once), and
    journals ``run.halt``. Use as a context manager around the rollout's work."""

    def __init__(self, store: Store, stop: StopSignal, journal: Journal) -> None:
        self.store = store
        self.stop = stop
        self.journal = journal
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fleet-halt-watch", daemon=True)

    def __enter__(self) -> HaltWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=WAIT + 5)

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                halt = self.store.wait_halt(WAIT)
            except FleetError as exc:  # the controller's own reads will report a lasting failure
                log.warning("cannot read the global halt: %s", exc.message)
                self._done.wait(WAIT)
                continue
            if halt is not None and not self._done.is_set():
                self._heard(halt)
                return

    def _heard(self, halt: HaltState) -> None:
        reason = halt_reason(halt)
        if not self.stop.soft.is_set():
            data = {"who": halt.who, "reason": halt.reason, "set_at": utc_iso(halt.at)}
            try:
                self.journal.emit("run.halt", excerpt=reason, data=data)
            except LeaseLost as exc:  # the run was taken over meanwhile: stop, write nothing
                self.stop.request(exc.message, hard=True)
                return
        self.stop.request(reason)
