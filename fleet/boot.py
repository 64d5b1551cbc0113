"""Provider stages: rescue boot, back to disk, reboot, wait for SSH, reinstall.

Each stage is converging like an SSH step: it first checks whether the host is already where the
stage would put it (boot setting in the API, SSH answering with the pinned key of that boot
generation, identity), and only then sets the boot, reboots, waits for the task and for SSH.

Host keys: after fleet itself reboots a host into rescue, the new rescue key is accepted and pinned
for the "rescue" role; back on disk the installed system's pinned "disk" key must match again.
After a reinstall the installed system's key is new: it is accepted and pinned for the "disk"
role once the host proves to be the freshly installed server (see :mod:`fleet.reinstall`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet import reinstall
from fleet.errors import FleetError, HostKeyMismatch, TransportError
from fleet.provider.base import Task
from fleet.transport.base import KeyExpectation, Transport

if TYPE_CHECKING:
    from fleet.executor import Pipeline
    from fleet.plan import RenderedStage


log = logging.getLogger(__name__)


class WrongServer(FleetError):
    """The inventory and the provider disagree about a host: refuse to touch it."""


def is_rescue(transport: Transport) -> bool:
    """OVH's rescue systems name themselves rescue-customer / rescue12-customer-eu..."""
    result = transport.run("hostname", timeout=30)
    return result.ok and result.stdout.strip().startswith("rescue")


def is_installed_system(transport: Transport) -> bool:
    return not is_rescue(transport)


def run_stage(p: Pipeline, stage: RenderedStage) -> str:
    """Run a provider stage for pipeline ``p``; returns the boot mode the host is left in."""
    handlers = {
        "rescue": _rescue,
        "disk": _disk,
        "reboot": _reboot,
        "wait_ssh": _wait_ssh,
        "reinstall": _reinstall,
    }
    p.journal.emit("step.start", host=p.host.name, stage=stage.name, step=stage.kind)
    mode, outcome = handlers[stage.kind](p, stage)
    p.journal.emit(
        "step.end",
        host=p.host.name,
        stage=stage.name,
        step=stage.kind,
        outcome=outcome,
        data={"mode": mode},
    )
    return mode


def _service(p: Pipeline) -> str:
    name = p.host.service_name
    if not name:
        raise WrongServer(
            f"{p.host.name}: no `ovh_service` in the inventory; provider stages need it"
        )
    return name


def _timeout(p: Pipeline, stage: RenderedStage) -> float:
    return stage.timeout or p.job.settings.reboot_timeout


def _check_identity(p: Pipeline, service: str) -> None:
    server = p.svc.provider.server(service)
    if server.ip != p.host.address:
        raise WrongServer(
            f"{p.host.name}: inventory address {p.host.address} is not the OVH address {server.ip} "
            f"of {service}; refusing to touch a server that may not be the one expected"
        )


def _already(p: Pipeline, role: str, check: Callable[[Transport], bool]) -> bool:
    """True when SSH answers with the pinned key of ``role`` and passes ``check``."""
    if p.svc.store.pinned_key(p.host.name, role) is None:
        return False
    try:
        transport = p.svc.connector.open(p.endpoint, KeyExpectation(role=role))
    except (HostKeyMismatch, TransportError):
        return False  # another boot generation answers: not converged
    if check(transport):
        p.adopt(transport)
        return True
    transport.close()
    return False


def _reboot_into(p: Pipeline, service: str, boot_id: int | None, stage: RenderedStage) -> None:
    prov = p.svc.provider
    if boot_id is not None:
        key = p.job.settings.rescue_public_key if stage.kind == "rescue" else None
        prov.set_boot(service, boot_id, rescue_ssh_key=key)
    task = prov.reboot(service)
    _note_task(p, stage, task)
    prov.wait_task(service, task.id, _timeout(p, stage))


def _await_ssh(
    p: Pipeline,
    stage: RenderedStage,
    expect: KeyExpectation,
    check: Callable[[Transport], bool],
    timeout: float | None = None,
) -> None:
    p.journal.emit(
        "host.wait",
        host=p.host.name,
        stage=stage.name,
        step=stage.kind,
        data={"what": f"SSH with the {expect.role} host key"},
    )
    transport = p.svc.connector.wait_for_ssh(
        p.endpoint,
        expect,
        timeout=timeout or _timeout(p, stage),
        poll_interval=p.job.settings.ssh_poll,
        identity_check=check,
    )
    p.adopt(transport)


def _rescue(p: Pipeline, stage: RenderedStage) -> tuple[str, str]:
    service = _service(p)
    _check_identity(p, service)
    rescue = p.svc.provider.rescue_boot(service)
    if p.svc.provider.server(service).boot_id == rescue.id and _already(p, "rescue", is_rescue):
        return "rescue", "converged"
    _reboot_into(p, service, rescue.id, stage)
    _await_ssh(p, stage, KeyExpectation(role="rescue", accept_new=True), is_rescue)
    return "rescue", "applied"


def _disk(p: Pipeline, stage: RenderedStage) -> tuple[str, str]:
    service = _service(p)
    disk = p.svc.provider.disk_boot(service)
    if p.svc.provider.server(service).boot_id == disk.id and _already(
        p, "disk", is_installed_system
    ):
        return "disk", "converged"
    _reboot_into(p, service, disk.id, stage)
    _await_ssh(p, stage, KeyExpectation(role="disk"), is_installed_system)
    return "disk", "applied"


def _reboot(p: Pipeline, stage: RenderedStage) -> tuple[str, str]:
    service = _service(p)
    _reboot_into(p, service, None, stage)
    if p.mode == "rescue":  # a rescue reboot comes back with a fresh rescue key
        _await_ssh(p, stage, KeyExpectation(role="rescue", accept_new=True), is_rescue)
    else:
        _await_ssh(p, stage, KeyExpectation(role="disk"), is_installed_system)
    return p.mode, "applied"


def _wait_ssh(p: Pipeline, stage: RenderedStage) -> tuple[str, str]:
    check = is_rescue if p.mode == "rescue" else is_installed_system
    _await_ssh(p, stage, KeyExpectation(role=p.mode), check)
    return p.mode, "converged"


def _reinstall(p: Pipeline, stage: RenderedStage) -> tuple[str, str]:
    """Reinstall the OS through the API, then pin the new system's host key.

    Refused (nothing sent) unless the run approves this host and the request fits the server.
    The task of an earlier attempt of this run is adopted; so is one already running.
    """
    service = _service(p)
    _check_identity(p, service)
    reinstall.check_approved(p.svc.store.get_run(p.job.run_id).options, p.host.name)
    spec = reinstall.parse_params(stage.params, p.host.name)
    earlier = reinstall.earlier_attempt(p.svc.store.events(p.job.run_id, p.host.name), stage.name)
    task = reinstall.resume_task(p.svc.provider, service, earlier) if earlier else None
    old_key = reinstall.key_id(p.svc.store.pinned_key(p.host.name, "disk"))
    if earlier is not None:
        old_key = earlier.replaces_key  # what was pinned before this run's reinstall began
    if task is not None:
        _note_task(p, stage, task, "adopting")
    else:
        task = _start_reinstall(p, stage, service, spec, old_key)
    timeout = stage.timeout or reinstall.DEFAULT_TIMEOUT
    progress = reinstall.InstallProgress(p, stage, service)
    p.svc.provider.wait_task(service, task.id, timeout, progress)
    _clear_rescue_key(p, service, spec)
    names = [service, p.svc.provider.server(service).reverse]
    if spec.hostname:
        names.append(reinstall.hostname_for(spec.hostname, p.host.name, service, p.host.name))
    expect = KeyExpectation(role="disk", accept_new=True)
    check = reinstall.installed_identity(names, old_key)
    _await_ssh(p, stage, expect, check, timeout=p.job.settings.reboot_timeout)
    return "disk", "applied"


def _start_reinstall(
    p: Pipeline,
    stage: RenderedStage,
    service: str,
    spec: reinstall.ReinstallSpec,
    old_key: str | None,
) -> Task:
    """Validate (GETs only), adopt a reinstall already running, else POST one.

    The ids of the existing reinstall tasks (and the id of the disk key pinned now, which the
    new system must not present) are journaled before the POST, so that a resume after a
    crash in between finds the task this POST started instead of starting another.
    """
    prov = p.svc.provider
    key = p.job.settings.rescue_public_key
    request = reinstall.prepare_request(prov, p.host, spec, ssh_key=key)
    known = prov.tasks(service, function=reinstall.REINSTALL_TASK)
    running = reinstall.in_flight(prov, service, known)
    if running is not None:
        _note_task(p, stage, running, "adopting", replaces_key=old_key)
        return running
    p.journal.emit(
        "host.wait",
        host=p.host.name,
        stage=stage.name,
        step=stage.kind,
        data={
            "what": f"OVH to accept the reinstall of {spec.os}",
            "known_tasks": known,
            "replaces_key": old_key,
        },
    )
    if p.svc.leases:
        p.svc.leases.ensure(p.host.name)  # fencing: still ours right before we destroy
    task = prov.reinstall(service, request)
    _note_task(p, stage, task, "started")
    return task


def _note_task(p: Pipeline, stage: RenderedStage, task: Task, how: str = "", **extra: Any) -> None:
    """Journal that the host now waits for an OVH task (``how``: adopting, started...)."""
    detail = f"{task.function}, {how}" if how else task.function
    p.journal.emit(
        "host.wait",
        host=p.host.name,
        stage=stage.name,
        step=stage.kind,
        query_id=task.query_id,
        data={"what": f"OVH task {task.id} ({detail})", "task": task.id, **extra},
    )


def _clear_rescue_key(p: Pipeline, service: str, spec: reinstall.ReinstallSpec) -> None:
    """A rescue key fleet set and left behind breaks later installs: clear it (and leave a
    key fleet did not set alone)."""
    prov = p.svc.provider
    current = prov.server(service).rescue_ssh_key
    if not current:
        return
    ours = (p.job.settings.rescue_public_key, spec.ssh_key)
    if not any(reinstall.same_key(current, key) for key in ours):
        log.warning("%s: leaving a rescue SSH key fleet did not set on %s", p.host.name, service)
        return
    prov.set_boot(service, prov.disk_boot(service).id, rescue_ssh_key="")
