"""``fleet worker``'s engine: the Celery worker that runs host jobs from the given queues.

The pool is Celery's ``threads`` pool: a host's pipeline waits on SSH and the OVH API most of
the time, and the tasks of one run share this process's lease heartbeat and stop signal. A
worker killed outright (SIGKILL, the machine lost) takes its running tasks with it; the broker
delivers them again after ``workers.visibility_timeout`` (see :mod:`fleet.workers.runtime`).
"""

from __future__ import annotations

from typing import Any

from fleet.workers.payload import TASK_NAME
from fleet.workers.runtime import WorkerRuntime


def register(app: Any, runtime: WorkerRuntime) -> None:
    """Bind fleet's task to ``runtime`` in ``app``."""

    @app.task(name=TASK_NAME, bind=True)  # type: ignore[untyped-decorator]
    def run_host_task(self: Any, payload: Any) -> dict[str, Any]:
        return runtime.run(payload, str(self.request.id))


def serve(
    app: Any,
    runtime: WorkerRuntime,
    *,
    queues: list[str],
    concurrency: int,
    loglevel: str = "WARNING",
) -> int:
    """Consume ``queues`` until told to stop (SIGTERM, Ctrl-C: in-flight tasks finish first);
    returns the worker's exit code."""
    register(app, runtime)
    worker = app.Worker(
        hostname=runtime.name,
        queues=queues,
        concurrency=concurrency,
        pool="threads",
        loglevel=loglevel,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
