"""The ``reinstall`` stage: reinstall the OS through the API, then pin the new system's host key.

Refused (nothing sent) unless the run approves this host and the request fits the server. The
task of an earlier attempt of this run is adopted; so is one already running.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fleet.provider.base import Task
from fleet.stages.boot import await_ssh, check_identity, note_task, service_of
from fleet.stages.context import Context
from fleet.stages.reinstall.approval import check_approved
from fleet.stages.reinstall.identity import installed_identity, key_id, same_key
from fleet.stages.reinstall.request import prepare_request
from fleet.stages.reinstall.spec import ReinstallSpec, hostname_for, parse_params
from fleet.stages.reinstall.task import (
    DEFAULT_TIMEOUT,
    REINSTALL_TASK,
    InstallProgress,
    earlier_attempt,
    resume_task,
)
from fleet.transport.base import KeyExpectation

if TYPE_CHECKING:
    from fleet.plan import RenderedStage

log = logging.getLogger(__name__)


def reinstall(ctx: Context, stage: RenderedStage) -> tuple[str, str]:
    """Reinstall the host's server; returns the boot mode it is left in and the outcome."""
    service = service_of(ctx)
    check_identity(ctx, service)
    check_approved(ctx.run_options(), ctx.host.name)
    spec = parse_params(stage.params, ctx.host.name)
    earlier = earlier_attempt(ctx.host_events(), stage.name)
    task = resume_task(ctx.provider, service, earlier) if earlier else None
    old_key = key_id(ctx.pinned_key("disk"))
    if earlier is not None:
        old_key = earlier.replaces_key  # what was pinned before this run's reinstall began
    if task is not None:
        note_task(ctx, stage, task, "adopting")
    else:
        task = _start(ctx, stage, service, spec, old_key)
    timeout = stage.timeout or DEFAULT_TIMEOUT
    progress = InstallProgress(ctx, stage, service)
    ctx.provider.wait_task(service, task.id, timeout, progress)
    _clear_rescue_key(ctx, service, spec)
    names = [service, ctx.provider.server(service).reverse]
    if spec.hostname:
        names.append(hostname_for(spec.hostname, ctx.host.name, service, ctx.host.name))
    expect = KeyExpectation(role="disk", accept_new=True)
    check = installed_identity(names, old_key)
    await_ssh(ctx, stage, expect, check, timeout=ctx.settings.reboot_timeout)
    return "disk", "applied"


def _start(
    ctx: Context,
    stage: RenderedStage,
    service: str,
    spec: ReinstallSpec,
    old_key: str | None,
) -> Task:
    """Validate (GETs only), adopt a reinstall already running, else POST one.

    The ids of the existing reinstall tasks (and the id of the disk key pinned now, which the
    new system must not present) are journaled before the POST, so that a resume after a
    crash in between finds the task this POST started instead of starting another.
    """
    prov = ctx.provider
    key = ctx.settings.rescue_public_key
    request = prepare_request(prov, ctx.host, spec, ssh_key=key)
    known = prov.tasks(service, function=REINSTALL_TASK)
    running = prov.in_flight(service, REINSTALL_TASK, known)
    if running is not None:
        note_task(ctx, stage, running, "adopting", replaces_key=old_key)
        return running
    ctx.emit(
        "host.wait",
        stage=stage.name,
        step=stage.kind,
        data={
            "what": f"OVH to accept the reinstall of {spec.os}",
            "known_tasks": known,
            "replaces_key": old_key,
        },
    )
    ctx.fence()  # still ours right before we destroy
    task = prov.reinstall(service, request)
    note_task(ctx, stage, task, "started")
    return task


def _clear_rescue_key(ctx: Context, service: str, spec: ReinstallSpec) -> None:
    """A rescue key fleet set and left behind breaks later installs: clear it (and leave a
    key fleet did not set alone)."""
    prov = ctx.provider
    current = prov.server(service).rescue_ssh_key
    if not current:
        return
    ours = (ctx.settings.rescue_public_key, spec.ssh_key)
    if not any(same_key(current, key) for key in ours):
        log.warning("%s: leaving a rescue SSH key fleet did not set on %s", ctx.host.name, service)
        return
    prov.set_boot(service, prov.disk_boot(service).id, rescue_ssh_key="")
