"""This run's reinstall task: adopt, resume, never start a second one blindly; its progress.

Before its POST the stage journals the ids of the server's existing reinstall tasks, and after
it the id of the task it started or adopted; :func:`earlier_attempt` reads those marks back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet.errors import ProviderError, ProviderNotFound, TaskFailed
from fleet.provider.base import InstallStatus, Provider, Task

if TYPE_CHECKING:
    from fleet.plan import RenderedStage
    from fleet.stages.context import Context
    from fleet.store.base import Event

#: The OVH task function of a reinstall.
REINSTALL_TASK = "reinstallServer"
#: Longest wait for one server's install when the stage sets no ``timeout``.
DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Earlier:
    """What the journal says an earlier attempt of this run did for a reinstall stage."""

    task_id: int | None  # the task it started or adopted
    known: tuple[int, ...]  # reinstall tasks that existed before its POST (no task id yet)
    this_attempt: bool  # journaled since the host's latest host.start
    replaces_key: str | None = None  # key_id of the disk key pinned before the reinstall


def earlier_attempt(events: Sequence[Event], stage: str) -> Earlier | None:
    """The last reinstall mark of ``stage`` in one host's events of this run, if any."""
    marks = [
        e
        for e in events
        if e.kind == "host.wait"
        and e.stage == stage
        and ("task" in e.data or "known_tasks" in e.data)
    ]
    if not marks:
        return None
    last = marks[-1]
    starts = [e.seq or 0 for e in events if e.kind == "host.start"]
    this_attempt = bool(starts) and (last.seq or 0) > max(starts)
    replaced = [e.data["replaces_key"] for e in marks if "replaces_key" in e.data]
    old_key = str(replaced[0]) if replaced and replaced[0] else None
    if "task" in last.data:
        return Earlier(int(last.data["task"]), (), this_attempt, old_key)
    known = tuple(int(i) for i in last.data.get("known_tasks") or ())
    return Earlier(None, known, this_attempt, old_key)


def task_or_init(provider: Provider, service: str, task_id: int) -> Task:
    """A task; one whose details still answer 404 was just created (OVH lags): ``init``."""
    try:
        return provider.task(service, task_id)
    except ProviderNotFound:
        return Task(id=task_id, function=REINSTALL_TASK, status="init")


def resume_task(provider: Provider, service: str, earlier: Earlier) -> Task | None:
    """The task an earlier attempt started (pending or done), or None to start one.

    Raises TaskFailed when it failed during the attempt running now: the automatic retries
    do not start a second reinstall; ``fleet resume`` does.
    """
    if earlier.task_id is not None:
        task = task_or_init(provider, service, earlier.task_id)
    else:
        new = sorted(set(provider.tasks(service, function=REINSTALL_TASK)) - set(earlier.known))
        if not new:
            return None  # the POST never reached OVH
        task = task_or_init(provider, service, new[-1])
    if not task.failed:
        return task
    if not earlier.this_attempt:
        return None
    raise TaskFailed(
        f"reinstall task {task.id} ended {task.status}; not started again automatically",
        server=service,
        query_id=task.query_id,
        hint="look at the server, then `fleet resume RUN` starts a new reinstall",
    )


def progress_text(task: Task, status: InstallStatus | None) -> tuple[str, str | None]:
    """A line for the journal and the install step it names (from ``install/status``)."""
    base = f"OVH reinstall task {task.id} ({task.status})"
    if status is None or not status.steps:
        return base, None
    steps = status.steps
    done = sum(1 for step in steps if step.status == "done")
    current = next((step for step in steps if step.status != "done"), steps[-1])
    text = f"{base}: {current.comment} ({done}/{len(steps)} steps done, {status.elapsed_seconds}s)"
    if current.status == "error" and current.error:
        text += f", error: {current.error}"
    return text, current.comment


class InstallProgress:
    """``wait_task`` progress: journals each new task status or install step as ``host.wait``.

    ``install/status`` is best effort: an error reading it never stops the wait.
    """

    def __init__(self, ctx: Context, stage: RenderedStage, service: str) -> None:
        self.ctx = ctx
        self.stage = stage
        self.service = service
        self._last: tuple[str, str | None] | None = None

    def __call__(self, task: Task, waited: float) -> None:
        status = self._status() if task.pending else None
        text, step = progress_text(task, status)
        last = self._last
        if last and last[0] == task.status and step in (None, last[1]):
            return  # nothing new (or install/status unreadable for a moment)
        self._last = (task.status, step)
        self.ctx.emit(
            "host.wait",
            stage=self.stage.name,
            step=self.stage.kind,
            query_id=task.query_id,
            data={"what": text, "task": task.id, "status": task.status, "install_step": step},
        )

    def _status(self) -> InstallStatus | None:
        try:
            return self.ctx.provider.install_status(self.service)
        except ProviderError:
            return None
