"""``fleet ovh``: operator commands straight against the OVH API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import listing_progress, table
from fleet.cli.params import Duration, option
from fleet.errors import FleetError, UsageError

if TYPE_CHECKING:
    from fleet.provider.base import Task


@click.group("ovh")
def ovh_group() -> None:
    """Look at and act on servers through the OVH API (credentials: ovh.conf / OVH_* env)."""


def _service(app: App, host: str) -> str:
    """A host name from the inventory, or an OVH service name as is."""
    try:
        entry = app.inventory().get(host)
    except FleetError:  # no inventory: take HOST as a service name
        return host
    if entry is None:
        return host
    if not entry.service_name:
        raise UsageError(
            f"{host} has no `ovh_service` in the inventory",
            hint="give the host `fleet: {ovh_service: nsXXXX.ip-...}`",
        )
    return entry.service_name


@ovh_group.command("servers")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def ovh_servers(app: App, as_json: bool) -> None:
    """Servers of the account, with datacenter, rack, state and disk groups.

    Two API calls per server: at OVH's 60 requests a minute a large account takes minutes,
    and progress lines on standard error say how far it is.
    """
    provider = app.provider()
    rows: list[dict[str, str]] = []
    names = provider.list_servers()
    progress = listing_progress(app, "servers", len(names), calls_each=2)
    for name in names:
        progress.done(len(rows))
        s, hw = provider.server(name), provider.hardware(name)
        groups = " + ".join(f"{g.count}x{g.disk_type} {g.size_gb}GB" for g in hw.disk_groups)
        rows.append(
            {
                "name": name,
                "ip": s.ip,
                "datacenter": s.datacenter,
                "rack": s.rack,
                "state": s.state,
                "disks": groups,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table(
        [[r["name"], r["ip"], r["datacenter"], r["rack"], r["state"], r["disks"]] for r in rows],
        ["SERVICE", "IP", "DC", "RACK", "STATE", "DISK GROUPS"],
    )


@ovh_group.command("boot")
@click.argument("host")
@click.argument("mode", type=click.Choice(["rescue", "disk"]))
@click.option(
    "--reboot/--no-reboot", default=True, show_default=True, help="Reboot now to apply it."
)
@click.option("--wait", is_flag=True, help="Wait for the reboot task to end.")
@option(
    "--timeout",
    type=Duration(positive=True),
    default="15m",
    show_default=True,
    help="Longest wait for the reboot task",
)
@pass_app
def ovh_boot(app: App, host: str, mode: str, reboot: bool, wait: bool, timeout: float) -> None:
    """Set HOST's boot to rescue or disk and (by default) hard-reboot it.

    Rescue uses the customer rescue kernel and sets rescueSshKey from rescue.ssh_public_key.

    \b
    Example:
      fleet ovh boot srv-001 rescue --wait
    """
    provider = app.provider()
    service = _service(app, host)
    asked = datetime.now(UTC)  # a reboot asked before our boot change is not adopted
    boot = provider.rescue_boot(service) if mode == "rescue" else provider.disk_boot(service)
    key_path = app.settings.path("rescue.ssh_public_key")
    key = key_path.read_text().strip() if key_path and mode == "rescue" else None
    provider.set_boot(service, boot.id, rescue_ssh_key=key)
    click.echo(f"{service}: boot set to {boot.kernel or boot.type} (id {boot.id})")
    if not reboot:
        return
    task = provider.reboot(service, since=asked)
    click.echo(f"{service}: reboot task {task.id} {task.status}")
    if wait:

        def progress(t: object, waited: float) -> None:
            click.echo(
                f"{service}: task {task.id} {getattr(t, 'status', '?')} after {waited:.0f}s",
                err=True,
            )

        done = provider.wait_task(service, task.id, timeout, progress)
        click.echo(f"{service}: task {done.id} {done.status}")


@ovh_group.command("tasks")
@click.argument("host")
@click.option("--function", help="Only tasks of this function (hardReboot, reinstallServer, ...).")
@click.option("--status", help="Only tasks in this status (todo, doing, done, ...).")
@pass_app
def ovh_tasks(app: App, host: str, function: str | None, status: str | None) -> None:
    """HOST's OVH tasks, newest first."""
    provider = app.provider()
    service = _service(app, host)
    ids = sorted(provider.tasks(service, function, status), reverse=True)
    progress = listing_progress(app, "tasks", len(ids), calls_each=1)
    tasks: list[Task] = []
    for i in ids:
        progress.done(len(tasks))
        tasks.append(provider.task(service, i))
    table(
        [
            [
                str(t.id),
                t.function,
                t.status,
                _when(t.start_date),
                _when(t.done_date),
                t.comment or "",
            ]
            for t in tasks
        ],
        ["TASK", "FUNCTION", "STATUS", "STARTED", "DONE", "COMMENT"],
    )


def _when(at: datetime | None) -> str:
    """A task date for the table: UTC, to the second."""
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
