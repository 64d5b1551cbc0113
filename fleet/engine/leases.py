"""This process's side of leases and stopping: the heartbeat that keeps leases alive, the
fencing check before destructive steps, and the signal that stops a rollout's pipelines.

The store holds the leases themselves (see :mod:`fleet.store`); a :class:`LeaseKeeper` renews every
lease this process holds from one heartbeat thread, and notices when one was lost (broken by an
operator, or expired and granted elsewhere), so that the host's pipeline stops touching it.
"""

from __future__ import annotations

import threading
import time

from fleet.errors import FleetError, LeaseHeld
from fleet.store.base import Lease, Owner, Store
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
    """Holds this process's leases and renews them from one heartbeat thread."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._held: dict[str, Lease] = {}
        self._lost: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name="fleet-lease-heartbeat", daemon=True
        )
        self._thread.start()

    def acquire(self, host: str, owner: Owner, wait: float, stop: StopSignal) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds for its holder; raises LeaseHeld."""
        deadline = _monotonic() + wait
        while True:
            try:
                lease = self.store.acquire_lease(host, owner, self.ttl)
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
        lease = self.store.renew_lease(lease, self.ttl)
        with self._lock:
            self._held[host] = lease
        return lease

    def release(self, host: str) -> None:
        with self._lock:
            lease = self._held.pop(host, None)
        if lease is not None:
            self.store.release_lease(lease)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for host in list(self._held):
            self.release(host)

    def _beat(self) -> None:
        while not self._stop.wait(max(0.5, self.ttl / 3)):
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


class LeaseLost(FleetError):
    def __init__(self, host: str, why: str) -> None:
        super().__init__(f"{host}: lease lost ({why}); refusing to continue on this host")


def _monotonic() -> float:
    return time.monotonic()
