"""This process's side of leases and stopping: the heartbeat that keeps leases alive, the
fences its writes carry, and the signal that stops a rollout's pipelines.

The store holds the leases themselves (see :mod:`fleet.store`); a :class:`LeaseKeeper` renews the
run's lease and every host lease this process holds from one heartbeat thread, and notices when
one was lost (broken by an operator, or taken over), so that the pipelines stop touching hosts.
Every write a holder makes carries its :class:`~fleet.store.base.Fence` and is refused once it is
stale: that, not the heartbeat, is what stops a holder that was paused and comes back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from fleet.errors import FleetError, LeaseHeld, LeaseLost
from fleet.store.base import Fence, Lease, Owner, RunLease, Store
from fleet.transport.base import Transport


class StopSignal:
    """Shared by a rollout's pipelines: ``soft`` = start nothing new; ``hard`` = cut now."""

    def __init__(self) -> None:
        self.soft = threading.Event()
        self.hard = threading.Event()
        self.reason = ""
        self._open: set[Transport] = set()
        self._lock = threading.Lock()

    def request(self, reason: str, *, hard: bool = False) -> None:
        if not self.soft.is_set():
            self.reason = reason
        self.soft.set()
        if hard:
            self.hard.set()
            with self._lock:
                transports = list(self._open)
            for t in transports:  # in-flight commands end with a transport error
                t.close()

    def track(self, transport: Transport) -> None:
        with self._lock:
            self._open.add(transport)

    def untrack(self, transport: Transport) -> None:
        with self._lock:
            self._open.discard(transport)


class LeaseKeeper:
    """Holds this process's leases (the run's, the hosts') and renews them from one heartbeat
    thread."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self.run: RunLease | None = None
        #: Why the run's lease was lost (heartbeat refused), once it was.
        self.run_lost: str | None = None
        self._on_run_lost: Callable[[str], None] | None = None
        self._held: dict[str, Lease] = {}
        self._lost: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name="fleet-lease-heartbeat", daemon=True
        )
        self._thread.start()

    def hold_run(self, lease: RunLease, on_lost: Callable[[str], None]) -> None:
        """Keep the run's lease alive; ``on_lost(why)`` is called once if it is lost."""
        with self._lock:
            self.run, self._on_run_lost = lease, on_lost

    def fence(self, host: str | None = None) -> Fence | None:
        """What this process's writes about the run (or one host of it) carry."""
        with self._lock:
            run, lease = self.run, self._held.get(host) if host else None
        if run is None:
            return None
        if lease is None:
            return Fence(run.run_id, run.token)
        return Fence(run.run_id, run.token, host, lease.token)

    def acquire(self, host: str, owner: Owner, wait: float, stop: StopSignal) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds for its holder; raises LeaseHeld, or
        LeaseLost when this process no longer owns the run."""
        deadline = _monotonic() + wait
        while True:
            try:
                lease = self.store.acquire_lease(host, owner, self.ttl, fence=self.fence())
                break
            except LeaseHeld:
                if _monotonic() >= deadline or stop.soft.is_set():
                    raise
                stop.soft.wait(min(1.0, max(0.05, deadline - _monotonic())))
        with self._lock:
            self._held[host] = lease
            self._lost.pop(host, None)
        return lease

    def ensure(self, host: str) -> Lease:
        """Renew now and return the lease; raises if it was lost (broken or expired and taken)."""
        with self._lock:
            lost = self._lost.get(host)
            lease = self._held.get(host)
        if lost or lease is None:
            raise LeaseLost(host, lost or "not held")
        try:
            lease = self.store.renew_lease(lease, self.ttl)
        except LeaseLost:
            raise
        except FleetError as exc:  # broken (StoreError) or granted elsewhere (LeaseHeld)
            with self._lock:
                self._lost[host] = exc.message
            raise LeaseLost(host, exc.message) from exc
        with self._lock:
            self._held[host] = lease
        return lease

    def release(self, host: str) -> None:
        with self._lock:
            lease = self._held.pop(host, None)
        if lease is not None:
            self.store.release_lease(lease)

    def lost(self, host: str) -> str | None:
        """Why ``host``'s lease was lost, as the heartbeat found (None: not known lost)."""
        with self._lock:
            return self._lost.get(host)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for host in list(self._held):
            self.release(host)
        with self._lock:
            run, self.run = self.run, None
        if run is not None:  # lost meanwhile, or the store gone: the lease expires by itself
            with contextlib.suppress(FleetError):
                self.store.release_run(run)

    def _beat(self) -> None:
        while not self._stop.wait(max(0.5, self.ttl / 3)):
            self._beat_run()
            with self._lock:
                held = list(self._held.items())
            for host, lease in held:
                try:
                    renewed = self.store.renew_lease(lease, self.ttl)
                except FleetError as exc:
                    with self._lock:
                        self._lost[host] = exc.message
                    continue
                with self._lock:
                    if host in self._held:
                        self._held[host] = renewed

    def _beat_run(self) -> None:
        with self._lock:
            run, on_lost = self.run, self._on_run_lost
        if run is None or on_lost is None:  # none held, or already lost (kept: writes fail)
            return
        try:
            renewed = self.store.renew_run(run, self.ttl)
        except FleetError as exc:
            with self._lock:
                self._on_run_lost = None
                self.run_lost = exc.message
            on_lost(exc.message)
            return
        with self._lock:
            if self.run is run:
                self.run = renewed


def _monotonic() -> float:
    return time.monotonic()
