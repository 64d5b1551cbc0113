"""``fleet leases``: who holds which host; breaking a stale lease."""

from __future__ import annotations

import json
from typing import Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table
from fleet.clock import utc_iso


@click.group("leases")
def leases_group() -> None:
    """Per-host leases: who holds which host, and breaking a stale one."""


@leases_group.command("list")
@click.option("--json", "as_json", is_flag=True)
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
@click.argument("host")
@click.option("--reason", required=True, help="Recorded in the journal with who broke it.")
@pass_app
def leases_break(app: App, host: str, reason: str) -> None:
    """Break HOST's lease (its holder loses it at its next heartbeat).

    \b
    Example:
      fleet leases break srv-042 --reason 'operator laptop died'
    """
    lease = app.store.break_lease(host, str(app.actor), reason)
    click.echo(f"broke {host}'s lease held by {lease.owner}" if lease else f"{host} had no lease")
