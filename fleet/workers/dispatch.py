"""The controller's side: run each host's job as a Celery task and wait for its result.

:class:`WorkerDispatch` is a rollout's *host runner* (see :class:`fleet.engine.rollout.Rollout`):
the controller still decides batches, budget, halts and windows, one host at a time in its own
bounded pool; only where the host's pipeline runs changes. Each thread of that pool sends one
task to the host's queue and waits for its answer, passing the controller's stop requests on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import states

from fleet.engine.leases import StopSignal
from fleet.engine.pipeline import HostJob, HostResult
from fleet.inventory import Host
from fleet.provider.base import Pacing
from fleet.workers.pacer import run_usage
from fleet.workers.payload import TASK_NAME, dump_dispatch, load_result
from fleet.workers.relay import EventRelay
from fleet.workers.stopchannel import StopPublisher, stop_key

#: Seconds between reads of a task's state.
POLL = 0.25


class WorkerDispatch:
    """Sends each host's job to its queue and waits for the worker's result."""

    def __init__(
        self,
        app: Any,
        client: redis.Redis,
        *,
        run_id: str,
        run_token: int,
        stop: StopSignal,
        route: Callable[[Host], str],
        relay: EventRelay,
    ) -> None:
        self.app, self.route, self.relay, self.stop = app, route, relay, stop
        self.client, self.run_id, self.run_token = client, run_id, run_token
        self.key = stop_key(run_id, run_token)
        self.publisher = StopPublisher(client, self.key, stop)
        self._send = threading.Lock()  # Celery's result subscription is not thread-safe

    def __call__(self, job: HostJob) -> HostResult:
        name = job.host.name
        self.relay.watch(name)
        try:
            payload = dump_dispatch(job, self.run_token, self.key)
            with self._send:
                result = self.app.send_task(TASK_NAME, args=[payload], queue=self.route(job.host))
            while result.state not in states.READY_STATES:
                self.publisher.sync()
                time.sleep(POLL)
            self.publisher.sync()
            if result.state != states.SUCCESS:
                error = f"{type(result.result).__name__}: {result.result}"
                return HostResult(name, "failed", "infrastructure", message="worker: " + error)
            return load_result(result.result, name)
        finally:
            self.relay.unwatch(name)

    def ovh_usage(self) -> Pacing | None:
        """The OVH calls the workers made for this run execution, and their rate limit waits."""
        return run_usage(self.client, self.run_id, self.run_token)

    def close(self) -> None:
        self.publisher.sync()
        self.relay.close()
