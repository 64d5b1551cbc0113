"""Waiting for OVH tasks, and telling which task was created since a moment.

:class:`TaskWaits` polls one task with single requests (the loop is the retry): a 404 is
tolerated for a grace period (OVH's task details lag its task list), transient errors until the
timeout, and the poll interval doubles after every poll, up to its cap: OVH's calls are few
(about 60 a minute per consumer key) and a task that did not end in seconds will take minutes.

Adoption by time: OVH dates a task's creation (``startDate``) to the second, on its own clock.
A task counts as created since an instant only when its date is at or after that instant, so a
task of the same second but maybe older is never taken for a newer one; in exchange, whoever
asks for a task "since" an instant sends the request once OVH's clock is in a later second
(:func:`next_whole_second`), so that the task it starts is always recognised.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from fleet.errors import ProviderError, ProviderNotFound, ProviderTransient, TaskFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from fleet.clock import Clock
    from fleet.provider.base import Task, TaskProgress

log = logging.getLogger(__name__)

#: How many of the newest tasks of a function are examined when looking for one to adopt.
ADOPT_SCAN = 3
#: Upper bound on polls in one :meth:`TaskWaits.wait` (on top of its timeout).
MAX_POLLS = 100_000
#: python-ovh measures the offset of OVH's clock in whole seconds (``server - int(time())``):
#: an offset smaller than this is its own rounding, not a skewed clock.
MIN_SKEW_SECONDS = 2
#: Seconds slept beyond the next whole second of OVH's clock (clocks agree to milliseconds).
STAMP_MARGIN = 0.05


class TaskSource(Protocol):
    """Where tasks are listed and read (the provider, with its retries)."""

    def tasks(
        self, name: str, function: str | None = None, status: str | None = None
    ) -> list[int]: ...

    def task(self, name: str, task_id: int) -> Task: ...


class TaskWaits:
    """Polls tasks through ``read`` (one unretried ``GET .../task/{id}``), and finds among the
    newest tasks of a function the one to adopt.

    Args:
        read: ``(server, task id) -> Task``, one request, errors classified.
        clock: monotonic time and sleep.
        grace_seconds: how long a task may answer 404 before the 404 is believed.
        poll_interval: seconds before the second poll; each later interval doubles.
        max_poll_interval: the cap of the interval.
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
        for polls in range(MAX_POLLS):
            waited = self._clock.monotonic() - start
            try:
                task = self._read(name, task_id)
            except (ProviderNotFound, ProviderTransient) as exc:
                self._tolerate(name, task_id, exc, waited)
                pause = getattr(exc, "retry_after", None) or 0.0
            else:
                pause, last = 0.0, task
                if progress is not None:
                    progress(task, waited)
                if not task.pending:
                    return finished(name, task)
            remaining = timeout - (self._clock.monotonic() - start)
            if remaining <= 0:
                break
            delay = min(self.max_poll_interval, self.poll_interval * 2.0 ** min(polls, 30))
            self._clock.sleep(min(remaining, max(delay, pause)))
        raise timed_out(name, task_id, timeout, last)

    def pending(
        self, source: TaskSource, name: str, function: str, ids: Sequence[int] | None = None
    ) -> Task | None:
        """The newest pending task of ``function`` among the newest few (of ``ids`` when
        given, the ids of a listing the caller made; else listed now), if any."""
        newest = self.newest(source, name, function, ids)
        return next((task for task in newest if task.pending), None)

    def created_since(
        self, source: TaskSource, name: str, function: str, after: datetime
    ) -> Task | None:
        """The newest task of ``function`` dated at or after ``after``, among the newest few."""
        found = [t for t in self.newest(source, name, function) if created_since(t, after)]
        return max(found, key=lambda t: (t.start_date, t.id), default=None)

    def newest(
        self, source: TaskSource, name: str, function: str, ids: Sequence[int] | None = None
    ) -> Iterator[Task]:
        """The newest :data:`ADOPT_SCAN` tasks of ``function`` (among ``ids`` when given) whose
        details can be read, highest id first. A task created moments ago may answer 404 for a
        while: it is read again for the grace period. One whose details never appear tells
        neither its date nor that it runs: it is left out, so never adopted (an old one would
        stand for work never done)."""
        if ids is None:
            ids = source.tasks(name, function=function)
        for task_id in sorted(ids, reverse=True)[:ADOPT_SCAN]:
            task = self.readable(source.task, name, task_id)
            if task is not None:
                yield task

    def readable(self, read: Callable[[str, int], Task], name: str, task_id: int) -> Task | None:
        """The task's details through ``read``; while they answer 404 (a task created moments
        ago), read again for up to the grace period; None if they never appear."""
        start = self._clock.monotonic()
        for _ in range(MAX_POLLS):
            try:
                return read(name, task_id)
            except ProviderNotFound as exc:
                waited = self._clock.monotonic() - start
                if waited >= self.grace_seconds:
                    log.warning("%s: task %d listed but unreadable: %s", name, task_id, exc)
                    return None
                self._clock.sleep(min(self.poll_interval, self.grace_seconds - waited))
        return None

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


def created_since(task: Task, after: datetime) -> bool:
    """Whether OVH dated the task's creation at or after ``after`` (an undated task: no)."""
    return task.start_date is not None and task.start_date >= after


def next_whole_second(at: datetime) -> datetime:
    """The first instant at or after ``at`` with no fraction of a second."""
    floor = at.replace(microsecond=0)
    return floor if floor == at else floor + timedelta(seconds=1)


def clock_skew(time_delta: object) -> int:
    """Seconds to add to this machine's time to get OVH's, from python-ovh's ``time_delta``."""
    delta = int(time_delta) if isinstance(time_delta, int | float) else 0
    return delta if abs(delta) >= MIN_SKEW_SECONDS else 0
