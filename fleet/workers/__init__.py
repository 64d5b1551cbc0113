"""Scale-out: each host's pipeline as a Celery task on workers, a queue per datacenter.

The rollout controller stays one process (batches, budget, halts, windows); it hands each
host's job to :class:`~fleet.workers.dispatch.WorkerDispatch` instead of running it in its own
thread pool. Workers (``fleet worker --queues gra3,rbx8``) run the same pipeline code against
the same store. Only this package imports Celery and Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from fleet.engine.journal import Journal
from fleet.engine.leases import StopSignal
from fleet.errors import ConfigError
from fleet.inventory import Host
from fleet.provider.base import Provider
from fleet.stages.context import Connector
from fleet.store.base import Store
from fleet.workers.celeryapp import make_app
from fleet.workers.dispatch import WorkerDispatch
from fleet.workers.pacer import RedisBucket
from fleet.workers.relay import EventRelay
from fleet.workers.routing import check_route, queue_for
from fleet.workers.runtime import WorkerRuntime
from fleet.workers.serve import serve

__all__ = ["Broker", "WorkerDispatch", "WorkerRuntime", "check_route", "queue_for"]


class Broker:
    """The broker and result backend (one Redis) both sides talk to."""

    def __init__(self, url: str, visibility_timeout: float) -> None:
        self.url = url
        self.app = make_app(url, visibility_timeout)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)

    @property
    def shown(self) -> str:
        """The URL without its password."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
        return urlunsplit(parts._replace(netloc=netloc))

    def check(self) -> None:
        """Raise ConfigError unless the broker answers."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise ConfigError(
                f"workers.broker {self.shown}: {exc}",
                hint="start Redis there, or set workers.broker (FLEET_WORKERS_BROKER)",
            ) from exc

    def pacer(self, pacing_key: str, rate_per_minute: float, burst: int) -> RedisBucket:
        """The OVH rate limit every process of ``pacing_key`` shares, kept in this Redis."""
        return RedisBucket(
            self.client,
            pacing_key,
            rate_per_minute,
            burst,
            monotonic=time.monotonic,
            sleep=time.sleep,
        )

    def dispatch(
        self,
        journal: Journal,
        store: Store,
        *,
        run_token: int,
        stop: StopSignal,
        route: Callable[[Host], str],
    ) -> WorkerDispatch:
        """The controller's host runner for one run (relays the workers' events to the
        journal's observers); :meth:`WorkerDispatch.close` it at the end."""
        relay = EventRelay(journal, store)
        return WorkerDispatch(
            self.app,
            self.client,
            run_id=journal.run_id,
            run_token=run_token,
            stop=stop,
            route=route,
            relay=relay,
        )

    def serve(
        self,
        store: Store,
        connector: Connector,
        *,
        name: str,
        queues: list[str],
        concurrency: int,
        provider_factory: Callable[[], Provider] | None = None,
        key_file: str | None = None,
        loglevel: str = "WARNING",
    ) -> int:
        """Run a worker on ``queues`` until it is told to stop; its exit code."""
        runtime = WorkerRuntime(
            store,
            connector,
            self.client,
            name=name,
            provider_factory=provider_factory,
            key_file=key_file,
        )
        return serve(self.app, runtime, queues=queues, concurrency=concurrency, loglevel=loglevel)

    def consumers(self, timeout: float = 1.0) -> dict[str, list[str]]:
        """Per queue, the workers consuming it now (an empty map when none answers)."""
        answer: Any = self.app.control.inspect(timeout=timeout).active_queues() or {}
        out: dict[str, list[str]] = {}
        for worker, queues in answer.items():
            for q in queues:
                out.setdefault(str(q["name"]), []).append(str(worker))
        return out

    def close(self) -> None:
        self.client.close()
        self.app.close()
