"""Waiting for a reboot fleet asked OVH for: SSH first, OVH's task rarely.

OVH's fair use is about 60 calls a minute per consumer key, and polling a reboot task every few
seconds spends most of them. SSH is a free and better signal: the host answering with the key
and identity of the boot expected proves the reboot happened, provided that the system which
answered before the request could not pass for it. So, before the request, the stage reads the
key the host presents (the *witness*, journaled with the boot intent, so a resume has it):

- The new boot proves itself when it answers with the expected role's key (a new rescue key is
  accepted right after fleet's own request, as ever), passes the identity check, **and**
  presents a key other than the witness. Meanwhile OVH's task is polled only rarely, after
  ``reboot.task_poll`` seconds of SSH attempts, then at doubling intervals, to notice a failed
  task without waiting for the whole timeout; once SSH has proven the boot, one last read
  records the task's outcome (a task that ended badly still fails the stage).
- Without a witness (the host did not let fleet in before the request) or when the witness is
  the very key expected afterwards (a reboot of the installed system through the API), SSH
  proves nothing on its own: the task is waited for first (polls at growing intervals), then
  SSH, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet.errors import TaskFailed, TransportError
from fleet.transport.base import KeyExpectation, Transport

if TYPE_CHECKING:
    from fleet.plan import RenderedStage
    from fleet.provider.base import Task
    from fleet.stages.context import Context

#: Bound on the rounds of SSH slices and task polls of one wait (the timeout ends it first).
MAX_ROUNDS = 1_000
#: The interval between task polls grows up to this many times ``reboot.task_poll``.
MAX_POLL_FACTOR = 4.0
#: Seconds allowed to read the witness key before a reboot (the host may be down already).
WITNESS_TIMEOUT = 10.0

Key = tuple[str, str]


@dataclass(frozen=True)
class Reboot:
    """A reboot asked (or adopted) and what proves it done."""

    service: str
    task_id: int
    expect: KeyExpectation
    check: Callable[[Transport], bool]
    witness: Key | None  # the key the host presented before the request


def witness_key(ctx: Context) -> Key | None:
    """The key the host presents now, before a reboot request (None: it does not let us in)."""
    timeout = min(WITNESS_TIMEOUT, ctx.endpoint.connect_timeout or WITNESS_TIMEOUT)
    return ctx.connector.presented_key(ctx.endpoint, ctx.mode, timeout)


def key_text(key: Key | None) -> str | None:
    """A key as the journal keeps it (``type base64``; public, so no secret)."""
    return f"{key[0]} {key[1]}" if key else None


def key_of(text: object) -> Key | None:
    """The key of :func:`key_text`'s text (None for anything else)."""
    if not isinstance(text, str) or " " not in text:
        return None
    kind, _, blob = text.partition(" ")
    return kind, blob


def ssh_proves(ctx: Context, reboot: Reboot) -> bool:
    """Whether SSH alone can tell the new boot from the system that answered before."""
    if reboot.witness is None:
        return False
    if reboot.expect.accept_new:  # a fresh rescue key: never the one that answered before
        return True
    pinned = ctx.pinned_key(reboot.expect.role)
    if pinned is not None:  # the role's known key, if the witness is not it
        return reboot.witness != pinned
    # none pinned yet (trust on first use): a system of another role answered before (rescue,
    # to boot the disk) and cannot present the key accepted after; the same role could
    return ctx.mode != reboot.expect.role


def wait_rebooted(ctx: Context, stage: RenderedStage, reboot: Reboot) -> None:
    """Return once the host answers as the new boot (its session adopted); raise TaskFailed
    when OVH's task ends badly, a TransportError when the host never answers as expected."""
    what = {"what": f"SSH with the {reboot.expect.role} host key"}
    polls: int | None
    if ssh_proves(ctx, reboot):
        ctx.emit("host.wait", stage=stage.name, step=stage.kind, data=what)
        transport, task, polls = _ssh_first(ctx, stage, reboot)
        proof: str = "ssh"
    else:  # the task's own wait was announced with the request
        task = ctx.provider.wait_task(reboot.service, reboot.task_id, _timeout(ctx, stage))
        ctx.emit("host.wait", stage=stage.name, step=stage.kind, data=what)
        transport, polls, proof = (
            _ssh(ctx, reboot, _timeout(ctx, stage), reboot.check),
            None,
            "task",
        )
    ctx.adopt(transport)
    _record(ctx, stage, reboot, task, proof, polls)


def _ssh_first(
    ctx: Context, stage: RenderedStage, reboot: Reboot
) -> tuple[Transport, Task | None, int]:
    """SSH attempts in slices, one task poll between slices; then the task's last status."""

    def proof(transport: Transport) -> bool:
        presented = getattr(transport, "presented_key", None)
        return presented != reboot.witness and reboot.check(transport)

    deadline = time.monotonic() + _timeout(ctx, stage)
    interval = ctx.settings.task_poll
    ended: Task | None = None
    polls = 0
    for _ in range(MAX_ROUNDS):
        left = deadline - time.monotonic()
        try:
            window = left if ended is not None else min(interval, left)
            transport = _ssh(ctx, reboot, window, proof)
        except TransportError:
            if ended is not None or time.monotonic() >= deadline:
                raise
            ended, polls = _poll(ctx, reboot), polls + 1
            interval = min(interval * 2, MAX_POLL_FACTOR * ctx.settings.task_poll)
            continue
        if ended is None:
            ended = ctx.provider.task_outcome(reboot.service, reboot.task_id)
            _refuse_failed(reboot, ended)
        return transport, ended, polls
    raise TransportError(f"gave up after {MAX_ROUNDS} rounds of SSH attempts", host=ctx.host.name)


def _ssh(
    ctx: Context, reboot: Reboot, timeout: float, check: Callable[[Transport], bool]
) -> Transport:
    return ctx.connector.wait_for_ssh(
        ctx.endpoint,
        reboot.expect,
        timeout=timeout,
        poll_interval=ctx.settings.ssh_poll,
        identity_check=check,
    )


def _poll(ctx: Context, reboot: Reboot) -> Task | None:
    """One read of the task: itself once it ended well, None while it runs or is unreadable."""
    task = ctx.provider.peek_task(reboot.service, reboot.task_id)
    _refuse_failed(reboot, task)
    return task if task is not None and not task.pending else None


def _refuse_failed(reboot: Reboot, task: Task | None) -> None:
    if task is not None and task.failed:
        comment = f": {task.comment}" if task.comment else ""
        raise TaskFailed(
            f"task {task.id} ({task.function}) ended {task.status}{comment}",
            server=reboot.service,
            query_id=task.query_id,
        )


def _record(
    ctx: Context,
    stage: RenderedStage,
    reboot: Reboot,
    task: Task | None,
    proof: str,
    polls: int | None,
) -> None:
    """Journal the task's outcome and what proved the boot (``ssh`` or ``task``)."""
    ctx.emit(
        "boot.task",
        stage=stage.name,
        step=stage.kind,
        outcome=task.status if task is not None else "unknown",
        query_id=task.query_id if task is not None else None,
        data={"task": reboot.task_id, "proven_by": proof, "polls_before_ssh": polls},
    )


def _timeout(ctx: Context, stage: RenderedStage) -> float:
    return stage.timeout or ctx.settings.reboot_timeout
