"""Waiting for OVH tasks, riding through OVH's 404 and 5xx on a freshly created task.

:class:`TaskWaits` polls one task with single requests (the loop is the retry): a 404 is
tolerated for a grace period (OVH's task details lag its task list), transient errors until the
timeout, and the poll interval doubles while errors last.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fleet.errors import ProviderError, ProviderNotFound, ProviderTransient, TaskFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleet.clock import Clock
    from fleet.provider.base import Task, TaskProgress

log = logging.getLogger(__name__)

#: Upper bound on polls in one :meth:`TaskWaits.wait` (on top of its timeout).
MAX_POLLS = 100_000


class TaskWaits:
    """Polls tasks through ``read`` (one unretried ``GET .../task/{id}``).

    Args:
        read: ``(server, task id) -> Task``, one request, errors classified.
        clock: monotonic time and sleep.
        grace_seconds: how long a task may answer 404 before the 404 is believed.
        poll_interval: seconds between polls while the task runs.
        max_poll_interval: the cap of the interval while errors double it.
    """

    def __init__(
        self,
        read: Callable[[str, int], Task],
        clock: Clock,
        *,
        grace_seconds: float,
        poll_interval: float,
        max_poll_interval: float,
    ) -> None:
        self._read = read
        self._clock = clock
        self.grace_seconds = grace_seconds
        self.poll_interval = poll_interval
        self.max_poll_interval = max(poll_interval, max_poll_interval)

    def wait(
        self, name: str, task_id: int, timeout: float, progress: TaskProgress | None = None
    ) -> Task:
        """Poll until the task ends; raise TaskFailed if it ends badly, ProviderError on timeout."""
        start = self._clock.monotonic()
        last: Task | None = None
        errors = 0
        for _ in range(MAX_POLLS):
            waited = self._clock.monotonic() - start
            try:
                task = self._read(name, task_id)
            except (ProviderNotFound, ProviderTransient) as exc:
                self._tolerate(name, task_id, exc, waited)
                errors += 1
                pause = getattr(exc, "retry_after", None) or 0.0
            else:
                errors, pause, last = 0, 0.0, task
                if progress is not None:
                    progress(task, waited)
                if not task.pending:
                    return finished(name, task)
            remaining = timeout - (self._clock.monotonic() - start)
            if remaining <= 0:
                break
            delay = min(self.max_poll_interval, self.poll_interval * 2.0**errors)
            self._clock.sleep(min(remaining, max(delay, pause)))
        raise timed_out(name, task_id, timeout, last)

    def _tolerate(self, name: str, task_id: int, exc: ProviderError, waited: float) -> None:
        """Re-raise a 404 once the grace period is over; log and swallow the rest."""
        if isinstance(exc, ProviderNotFound) and waited >= self.grace_seconds:
            raise exc
        log.info("%s: task %d not readable yet after %.0fs: %s", name, task_id, waited, exc)


def finished(name: str, task: Task) -> Task:
    """A task that ended: itself when done, else TaskFailed (or ProviderError if unknown)."""
    if task.status == "done":
        log.info("%s: task %d (%s) done", name, task.id, task.function)
        return task
    comment = f": {task.comment}" if task.comment else ""
    message = f"task {task.id} ({task.function}) ended {task.status}{comment}"
    if task.failed:
        raise TaskFailed(message, server=name, query_id=task.query_id)
    raise ProviderError(f"{message} (unknown status)", server=name, query_id=task.query_id)


def timed_out(name: str, task_id: int, timeout: float, last: Task | None) -> ProviderError:
    """The error of a wait that outlived its timeout, with the last status seen."""
    function = last.function if last else "function unknown"
    status = last.status if last else "unknown"
    return ProviderError(
        f"timed out after {timeout:g}s waiting for task {task_id} ({function}), "
        f"last status {status}",
        server=name,
        query_id=last.query_id if last else None,
    )
