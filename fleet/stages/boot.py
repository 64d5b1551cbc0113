"""Provider boot stages: rescue boot, back to disk, reboot, wait for SSH.

Each stage is converging like an SSH step: it first checks whether the host is already where the
stage would put it (boot setting in the API, SSH answering with the pinned key of that boot
generation, identity), and only then sets the boot, reboots, waits for the task and for SSH.

Host keys: after fleet itself reboots a host into rescue, the new rescue key is accepted and pinned
for the "rescue" role; back on disk the installed system's pinned "disk" key must match again.
After a reinstall the installed system's key is new: it is accepted and pinned for the "disk"
role once the host proves to be the freshly installed server (see :mod:`fleet.stages.reinstall`).

Boot intents: before asking OVH for a reboot, the stage journals its intent (``boot.intent``:
server, boot id, the role expected after it, the request's time). An attempt that finds its
stage's intent still open (no end journaled since: the process died, or an infrastructure error
cut the wait) recognises the boot as its own: it adopts the reboot task OVH created since the
intent (:meth:`~fleet.provider.base.Provider.task_since`), or asks again when the request never
reached OVH, then waits for SSH exactly as the uninterrupted path does: a new rescue key is
accepted right after fleet's own request, with the identity check; the disk key must still
match. A key change fleet did not cause is refused as ever.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleet.errors import HostKeyMismatch, PayloadError, TransportError
from fleet.provider.base import Task
from fleet.stages.context import Context, Outcome
from fleet.transport.base import KeyExpectation, Transport

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import HostPlan, RenderedStage
    from fleet.store.base import Event

#: OVH's task function of a hard reboot.
REBOOT_TASK = "hardReboot"

#: A provider stage's work: returns the boot mode it leaves the host in and its outcome
#: (``applied`` or ``converged``).
Handler = Callable[[Context, "RenderedStage"], tuple[str, str]]


class WrongServer(PayloadError):
    """The inventory and the provider disagree about a host, or the inventory lacks what a
    provider stage needs: refuse to touch it (a payload failure, never retried)."""


def is_rescue(transport: Transport) -> bool:
    """OVH's rescue systems name themselves rescue-customer / rescue12-customer-eu..."""
    result = transport.run("hostname", timeout=30)
    return result.ok and result.stdout.strip().startswith("rescue")


def is_installed_system(transport: Transport) -> bool:
    return not is_rescue(transport)


def journaled(handler: Handler) -> Callable[[Context, RenderedStage], Outcome]:
    """A provider stage as the pipeline runs it: one journaled step named for its kind, whose
    end records the boot mode the host is left in (a resume starts from it)."""

    def run(ctx: Context, stage: RenderedStage) -> Outcome:
        ctx.emit("step.start", stage=stage.name, step=stage.kind)
        mode, outcome = handler(ctx, stage)
        ctx.emit(
            "step.end", stage=stage.name, step=stage.kind, outcome=outcome, data={"mode": mode}
        )
        return Outcome(mode=mode)

    return run


def service_of(ctx: Context) -> str:
    name = ctx.host.service_name
    if not name:
        raise WrongServer(
            f"{ctx.host.name}: no `fleet: {{ovh_service: ...}}` in the inventory; provider "
            "stages need it"
        )
    return name


def timeout_of(ctx: Context, stage: RenderedStage) -> float:
    return stage.timeout or ctx.settings.reboot_timeout


def check_identity(ctx: Context, service: str) -> None:
    """Refuse unless the inventory's address of the host is OVH's address of ``service``: an
    inventory that pairs one server's address with another's service would reboot one server
    and run the steps on the other. A name is resolved here (every address it has counts)."""
    server = ctx.provider.server(service)
    address = ctx.host.address
    if server.ip not in addresses_of(address):
        raise WrongServer(
            f"{ctx.host.name}: inventory address {address} is not the OVH address {server.ip} "
            f"of {service}; refusing to touch a server that may not be the one expected"
        )


def addresses_of(address: str) -> set[str]:
    """``address`` itself when it is an IP address, else every address its name resolves to
    (none when it does not resolve: then no OVH address matches it)."""
    try:
        return {str(ipaddress.ip_address(address))}
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return set()
    return {str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in found}


def _already(ctx: Context, role: str, check: Callable[[Transport], bool]) -> bool:
    """True when SSH answers with the pinned key of ``role`` and passes ``check``."""
    if ctx.pinned_key(role) is None:
        return False
    transport = ctx.connector.open(ctx.endpoint, KeyExpectation(role=role))
    try:
        answers = check(transport)  # connects: the pinned key of ``role`` must match
    except (HostKeyMismatch, TransportError):
        answers = False  # another boot generation answers, or none yet: not converged
    if answers:
        ctx.adopt(transport)
        return True
    transport.close()
    return False


@dataclass(frozen=True)
class BootIntent:
    """A reboot fleet asked for (journaled before the request)."""

    stage: str
    server: str
    boot_id: int | None
    role: str
    requested_at: datetime


def open_intent(events: Sequence[Event], stage: str | None = None) -> BootIntent | None:
    """The last boot intent (of ``stage``, or of any stage) not followed by that stage's end."""
    intent: BootIntent | None = None
    for e in events:
        if e.kind == "boot.intent" and e.stage and (stage is None or e.stage == stage):
            boot_id = e.data.get("boot_id")
            intent = BootIntent(
                e.stage,
                str(e.data.get("server")),
                int(boot_id) if boot_id is not None else None,
                str(e.data.get("role")),
                e.at,
            )
        elif e.kind == "step.end" and intent is not None and e.stage == intent.stage:
            intent = None
    return intent


def _reboot_into(
    ctx: Context, service: str, boot_id: int | None, stage: RenderedStage, role: str
) -> None:
    """Reboot the server into ``boot_id`` (None: as it is set), or adopt the reboot an earlier
    attempt of this stage asked for; returns once OVH's task is done."""
    prov = ctx.provider
    if _adopted(ctx, service, boot_id, stage):
        return
    intent = ctx.emit(
        "boot.intent",
        stage=stage.name,
        step=stage.kind,
        data={"server": service, "boot_id": boot_id, "role": role},
    )
    if boot_id is not None:
        key = ctx.settings.rescue_public_key if stage.kind == "rescue" else None
        prov.set_boot(service, boot_id, rescue_ssh_key=key)
    task = prov.reboot(service, since=intent.at)
    note_task(ctx, stage, task)
    prov.wait_task(service, task.id, timeout_of(ctx, stage))


def _adopted(ctx: Context, service: str, boot_id: int | None, stage: RenderedStage) -> bool:
    """Adopt the reboot of this stage's open intent, if OVH started it and it did not fail."""
    intent = open_intent(ctx.host_events(), stage.name)
    if intent is None:
        return False
    if boot_id is not None and ctx.provider.server(service).boot_id != boot_id:
        return False  # the boot was never set (or was changed since): ask again
    task = ctx.provider.task_since(service, REBOOT_TASK, intent.requested_at)
    if task is None or task.failed:
        return False  # the request never reached OVH, or its reboot failed: ask again
    note_task(ctx, stage, task, "adopting the reboot asked before the interruption")
    ctx.provider.wait_task(service, task.id, timeout_of(ctx, stage))
    return True


def await_ssh(
    ctx: Context,
    stage: RenderedStage,
    expect: KeyExpectation,
    check: Callable[[Transport], bool],
    timeout: float | None = None,
) -> None:
    ctx.emit(
        "host.wait",
        stage=stage.name,
        step=stage.kind,
        data={"what": f"SSH with the {expect.role} host key"},
    )
    transport = ctx.connector.wait_for_ssh(
        ctx.endpoint,
        expect,
        timeout=timeout or timeout_of(ctx, stage),
        poll_interval=ctx.settings.ssh_poll,
        identity_check=check,
    )
    ctx.adopt(transport)


def rescue(ctx: Context, stage: RenderedStage) -> tuple[str, str]:
    service = service_of(ctx)
    check_identity(ctx, service)
    rescue = ctx.provider.rescue_boot(service)
    if ctx.provider.server(service).boot_id == rescue.id and _already(ctx, "rescue", is_rescue):
        return "rescue", "converged"
    _reboot_into(ctx, service, rescue.id, stage, "rescue")
    await_ssh(ctx, stage, KeyExpectation(role="rescue", accept_new=True), is_rescue)
    return "rescue", "applied"


def disk(ctx: Context, stage: RenderedStage) -> tuple[str, str]:
    service = service_of(ctx)
    disk = ctx.provider.disk_boot(service)
    if ctx.provider.server(service).boot_id == disk.id and _already(
        ctx, "disk", is_installed_system
    ):
        return "disk", "converged"
    _reboot_into(ctx, service, disk.id, stage, "disk")
    await_ssh(ctx, stage, KeyExpectation(role="disk"), is_installed_system)
    return "disk", "applied"


#: How a ``reboot`` stage reboots (its ``how`` param): through OVH's API, with ``systemctl
#: reboot`` over SSH, or ``auto``: the API when the host has an ``ovh_service``, else SSH.
REBOOT_WAYS = ("auto", "ovh", "ssh")
#: Detached so that the command returns before the system goes down.
_SSH_REBOOT = "sync; nohup sh -c 'sleep 2; systemctl reboot' </dev/null >/dev/null 2>&1 &"
_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def reboots_over_ssh(stage: RenderedStage, has_service: bool) -> bool:
    """Whether a ``reboot`` stage reboots over SSH rather than through OVH's API."""
    how = str(stage.params.get("how") or "auto")
    if how not in REBOOT_WAYS:
        raise PayloadError(f"stage {stage.name}: how={how!r}, expected one of {REBOOT_WAYS}")
    return how == "ssh" or (how == "auto" and not has_service)


def needs_ovh(stage: RenderedStage, has_service: bool) -> bool:
    """Whether a stage can only run through OVH's API (it then needs ``ovh_service``)."""
    if stage.kind == "reboot":
        return not reboots_over_ssh(stage, has_service)
    return stage.kind in ("rescue", "disk", "reinstall")


def ovh_gaps(rendered: list[HostPlan], hosts: list[Host]) -> list[str]:
    """``host (stages)`` for each host whose plan goes through OVH's API without an
    ``ovh_service`` to do it with."""
    out = []
    for hp, host in zip(rendered, hosts, strict=True):
        names = [s.name for s in hp.stages if needs_ovh(s, bool(host.service_name))]
        if names and not host.service_name:
            out.append(f"{hp.host} ({', '.join(names)})")
    return out


def reboot(ctx: Context, stage: RenderedStage) -> tuple[str, str]:
    if reboots_over_ssh(stage, bool(ctx.host.service_name)):
        return _reboot_over_ssh(ctx, stage)
    service = service_of(ctx)
    _reboot_into(ctx, service, None, stage, ctx.mode)
    if ctx.mode == "rescue":  # a rescue reboot comes back with a fresh rescue key
        await_ssh(ctx, stage, KeyExpectation(role="rescue", accept_new=True), is_rescue)
    else:
        await_ssh(ctx, stage, KeyExpectation(role="disk"), is_installed_system)
    return ctx.mode, "applied"


def _reboot_over_ssh(ctx: Context, stage: RenderedStage) -> tuple[str, str]:
    """``systemctl reboot`` on the installed system, then wait for it to come back: same pinned
    host key, a new boot id (so the system that was going down never passes for it)."""
    if ctx.mode != "disk":
        raise PayloadError(
            f"{ctx.host.name}: a reboot over SSH needs the installed system; the host is in "
            f"{ctx.mode}, which only OVH's API can leave (add ovh_service)"
        )
    before = ctx.run_command(_BOOT_ID, 30).stdout.strip()
    ctx.emit("host.wait", stage=stage.name, step=stage.kind,
             data={"what": "the installed system to reboot (systemctl reboot over SSH)",
                   "boot_id": before})  # fmt: skip
    ctx.fence()
    ctx.run_command(_SSH_REBOOT, 30)

    def rebooted(transport: Transport) -> bool:
        now = transport.run(_BOOT_ID, timeout=30).stdout.strip()
        return bool(now) and now != before and is_installed_system(transport)

    await_ssh(ctx, stage, KeyExpectation(role="disk"), rebooted)
    return "disk", "applied"


def wait_ssh(ctx: Context, stage: RenderedStage) -> tuple[str, str]:
    check = is_rescue if ctx.mode == "rescue" else is_installed_system
    await_ssh(ctx, stage, KeyExpectation(role=ctx.mode), check)
    return ctx.mode, "converged"


def note_task(ctx: Context, stage: RenderedStage, task: Task, how: str = "", **extra: Any) -> None:
    """Journal that the host now waits for an OVH task (``how``: adopting, started...)."""
    detail = f"{task.function}, {how}" if how else task.function
    ctx.emit(
        "host.wait",
        stage=stage.name,
        step=stage.kind,
        query_id=task.query_id,
        data={"what": f"OVH task {task.id} ({detail})", "task": task.id, **extra},
    )
