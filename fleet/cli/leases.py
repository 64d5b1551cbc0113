"""``fleet leases``: who holds which host; breaking a stale lease."""

from __future__ import annotations

import json
from typing import Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table
from fleet.clock import utc_iso
from fleet.errors import UsageError


@click.group("leases")
def leases_group() -> None:
    """Per-host leases: who holds which host, and breaking a stale one."""


@leases_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def leases_list(app: App, as_json: bool) -> None:
    """Leases held now (and expired ones not yet taken over)."""
    from fleet.clock import SystemClock

    now = SystemClock().now()
    leases = app.store.list_leases()
    rows: list[dict[str, Any]] = [
        {
            "host": le.host,
            "owner": str(le.owner),
            "token": le.token,
            "taken_at": utc_iso(le.taken_at),
            "expires_at": utc_iso(le.expires_at),
            "expired": le.expires_at < now,
        }
        for le in leases
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table(
        [
            [
                r["host"],
                r["owner"],
                str(r["token"]),
                r["taken_at"],
                r["expires_at"] + (" (expired)" if r["expired"] else ""),
            ]
            for r in rows
        ],
        ["HOST", "OWNER", "TOKEN", "TAKEN", "EXPIRES"],
    )


@leases_group.command("break")
@click.argument("host", required=False)
@click.option("--run", "run_id", metavar="RUN", help="Break the run's lease instead of a host's.")
@click.option("--reason", required=True, help="Recorded in the journal with who broke it.")
@pass_app
def leases_break(app: App, host: str | None, run_id: str | None, reason: str) -> None:
    """Break HOST's lease, or with --run the lease of a run's owner.

    The holder loses it at once: its next write is refused and it stops touching the host (or,
    for a run, every host of it). Breaking a run's lease is how a live but stuck owner is
    displaced: `fleet resume RUN` then takes the run over.

    \b
    Example:
      fleet leases break srv-042 --reason 'operator laptop died'
      fleet leases break --run r20261125-101500-ab12 --reason 'owner hung in D state'
    """
    if (host is None) == (run_id is None):
        raise UsageError("give HOST or --run RUN (one of them)")
    who = str(app.actor)
    if run_id is not None:
        app.store.get_run(run_id)  # an unknown run is an error, not a no-op
        run_lease = app.store.break_run_lease(run_id, who, reason)
        click.echo(
            f"broke run {run_id}'s lease held by {run_lease.owner}"
            if run_lease
            else f"run {run_id} had no live lease"
        )
        return
    assert host is not None
    lease = app.store.break_lease(host, who, reason)
    click.echo(f"broke {host}'s lease held by {lease.owner}" if lease else f"{host} had no lease")
