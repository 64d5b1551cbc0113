"""``fleet quarantine``: hosts that failed, skipped by later rollouts until cleared."""

from __future__ import annotations

import json

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table
from fleet.clock import utc_iso


@click.group("quarantine")
def quarantine_group() -> None:
    """Hosts that failed: later rollouts skip them until cleared."""


@quarantine_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def quarantine_list(app: App, as_json: bool) -> None:
    """Quarantined hosts, with the run and reason."""
    entries = app.store.quarantined()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"host": q.host, "run": q.run_id, "reason": q.reason, "at": utc_iso(q.at)}
                    for q in entries
                ],
                indent=2,
            )
        )
        return
    table(
        [[q.host, q.run_id, f"{q.at:%Y-%m-%d %H:%M}", q.reason] for q in entries],
        ["HOST", "RUN", "SINCE (UTC)", "REASON"],
    )


@quarantine_group.command("clear")
@click.argument("hosts", nargs=-1, required=True)
@pass_app
def quarantine_clear(app: App, hosts: tuple[str, ...]) -> None:
    """Let later rollouts touch HOSTS again.

    \b
    Example:
      fleet quarantine clear srv-042
    """
    for host in hosts:
        cleared = app.store.clear_quarantine(host, str(app.actor))
        click.echo(f"{host}: {'cleared' if cleared else 'was not quarantined'}")
