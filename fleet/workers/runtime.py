"""A worker's side: run the host jobs its Celery tasks carry, safely even when delivered twice.

A task is delivered again when the worker running it died (``acks_late``: see
:mod:`fleet.workers.celeryapp`), or when it outlived the broker's visibility timeout while
still running. Either way the worker, before it touches the host:

1. reads the journal: a ``host.worker`` event naming this task followed by the host's end
   means the task already ran to its end: its recorded result is the answer, nothing runs;
2. waits while another holder in the same run (the worker that died, until its lease
   expires; a twin still running) holds the host's lease, then reads the journal again;
3. rebuilds what already ran on the host from the journal (steps done, boot mode, facts,
   steps started but never ended) exactly as ``fleet resume`` does, and runs the pipeline:
   done steps are skipped, an interrupted step is re-checked under its host-side lock.

The pipeline takes the host's lease with this worker's own identity, so a new fencing token:
a twin that lost the lease has every further write refused. Writes carry the controller's run
token, which this worker neither renews nor releases (the controller owns the run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import redis

from fleet.clock import SystemClock
from fleet.engine.journal import Journal
from fleet.engine.leases import LeaseKeeper, StopSignal
from fleet.engine.owners import current_owner
from fleet.engine.pipeline import HostJob, HostResult, Services, run_host
from fleet.engine.rollout import read_resumption
from fleet.errors import LeaseLost
from fleet.provider.base import Provider
from fleet.stages.context import Connector
from fleet.store.base import Event, Fence, RunLease, Store
from fleet.workers.pacer import for_run
from fleet.workers.payload import Dispatch, dump_result, load_dispatch
from fleet.workers.stopchannel import StopFollower

#: Journal event a worker writes before it runs a host's pipeline for a task.
MARK = "host.worker"
#: Events that end a host's pipeline, with the outcome they stand for.
ENDS = ("host.end", "host.skip", "host.lost")


class FollowerLeases(LeaseKeeper):
    """A worker's host leases for one run. Its writes carry the controller's run token, which
    the controller renews and releases: this keeper does neither (no ``on_lost`` is set, so
    the heartbeat leaves the run's lease alone, and :meth:`close` forgets it first)."""

    def __init__(self, store: Store, ttl: float, run: RunLease) -> None:
        super().__init__(store, ttl)
        self.run = run

    def close(self) -> None:
        self.run = None
        super().close()


@dataclass
class _Slot:
    """What the tasks of one run (one controller's execution of it) share in this worker."""

    services: Services
    journal: Journal
    follower: StopFollower
    tasks: int = 0


class WorkerRuntime:
    """Runs host jobs for any number of runs at once; one pipeline per host at a time."""

    def __init__(
        self,
        store: Store,
        connector: Connector,
        client: redis.Redis,
        *,
        name: str,
        provider_factory: Callable[[], Provider] | None = None,
        key_file: str | None = None,
    ) -> None:
        self.store, self.connector, self.client = store, connector, client
        self.name, self.provider_factory, self.key_file = name, provider_factory, key_file
        self._slots: dict[tuple[str, int], _Slot] = {}
        self._hosts: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def run(self, payload: Any, task_id: str) -> dict[str, Any]:
        """The Celery task's body: the host's result as JSON-safe data."""
        dispatch = load_dispatch(payload)
        job = dispatch.job
        slot = self._enter(dispatch)
        try:
            with self._host(job.run_id, job.host.name), for_run(job.run_id, dispatch.run_token):
                return dump_result(self._run(job, slot, task_id))
        finally:
            self._leave(dispatch)

    # -- one host ------------------------------------------------------------------------------
    def _run(self, job: HostJob, slot: _Slot, task_id: str) -> HostResult:
        name = job.host.name
        answer = answered(self.store.events(job.run_id, name), task_id)
        if answer is not None:
            return answer
        self._wait_for_run_holder(job, slot.services.stop)
        events = self.store.events(job.run_id, name)
        answer = answered(events, task_id)
        if answer is not None:
            return answer
        again = any(is_mark(e, task_id) for e in events)
        try:
            slot.journal.emit(MARK, host=name, data={"task": task_id, "worker": self.name, "again": again})  # fmt: skip
        except LeaseLost as exc:  # the run was taken over: touch nothing
            return HostResult(name, "stopped", "lease", message=exc.message)
        return run_host(self._resumed(job, events), slot.services, slot.journal)

    def _resumed(self, job: HostJob, events: list[Event]) -> HostJob:
        """The job as the journal says it stands (what earlier deliveries and runs did)."""
        r, name = read_resumption(events), job.host.name
        settings = replace(job.settings, key_file=self.key_file or job.settings.key_file)
        return replace(
            job,
            owner=current_owner(job.run_id),
            settings=settings,
            done_steps=r.done_steps.get(name, frozenset()),
            mode=r.modes.get(name, "disk"),
            facts=dict(r.facts.get(name, {})),
            in_doubt=r.in_doubt.get(name, frozenset()),
        )

    def _wait_for_run_holder(self, job: HostJob, stop: StopSignal) -> None:
        """Wait while the host's lease is live and held for this run by another process (a
        worker that died, until the lease expires; a twin delivery still running)."""
        me, clock = current_owner(job.run_id), SystemClock()
        while True:
            lease = next((x for x in self.store.list_leases() if x.host == job.host.name), None)
            if lease is None or lease.owner.run_id != job.run_id or lease.owner == me:
                return
            if lease.expires_at < clock.now() or stop.soft.wait(1.0):
                return

    # -- what the tasks of a run share -----------------------------------------------------------
    def _enter(self, dispatch: Dispatch) -> _Slot:
        key = (dispatch.job.run_id, dispatch.run_token)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = self._open(dispatch)
            slot.tasks += 1
            return slot

    def _open(self, dispatch: Dispatch) -> _Slot:
        job, token = dispatch.job, dispatch.run_token
        lease = RunLease(job.run_id, current_owner(job.run_id), token, None)
        keeper = FollowerLeases(self.store, job.settings.lease_ttl, lease)
        stop = StopSignal()
        services = Services(
            self.store, self.connector, self.provider_factory, leases=keeper, stop=stop
        )
        journal = Journal(self.store, job.run_id)
        journal.fence = Fence(job.run_id, token)
        return _Slot(services, journal, StopFollower(self.client, dispatch.stop_key, stop))

    def _leave(self, dispatch: Dispatch) -> None:
        key = (dispatch.job.run_id, dispatch.run_token)
        with self._lock:
            slot = self._slots[key]
            slot.tasks -= 1
            if slot.tasks:
                return
            del self._slots[key]
        slot.follower.close()
        if slot.services.leases is not None:
            slot.services.leases.close()

    @contextmanager
    def _host(self, run_id: str, host: str) -> Iterator[None]:
        """One pipeline per host in this process: a twin delivery waits for the first."""
        with self._lock:
            lock = self._hosts.setdefault((run_id, host), threading.Lock())
        with lock:
            yield


def is_mark(event: Event, task_id: str) -> bool:
    return event.kind == MARK and event.data.get("task") == task_id


def answered(events: list[Event], task_id: str) -> HostResult | None:
    """The result an earlier delivery of ``task_id`` recorded, if one ran to its end."""
    mark = next((e.seq for e in events if is_mark(e, task_id)), None)
    if mark is None:
        return None
    ends = [e for e in events if e.kind in ENDS and e.seq is not None and e.seq > mark]
    if not ends:
        return None
    end = ends[-1]
    host = end.host or ""
    if end.kind == "host.lost":
        return HostResult(host, "stopped", "lease", end.stage, end.step, end.excerpt)
    if end.kind == "host.skip":
        return HostResult(host, "skipped", end.outcome, message=end.excerpt)
    failure = end.data.get("failure")
    return HostResult(
        host,
        end.outcome or "failed",
        failure if isinstance(failure, str) else None,
        end.stage,
        end.step,
        end.excerpt,
        int(end.data.get("applied") or 0),
    )
