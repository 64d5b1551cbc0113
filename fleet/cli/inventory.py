"""``fleet inventory``: the hosts fleet knows, optionally enriched from OVH."""

from __future__ import annotations

import json
from typing import Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table


@click.group("inventory")
def inventory_group() -> None:
    """The hosts fleet knows: from inventory YAML files, optionally enriched from OVH."""


def _host_row(h: Any) -> list[str]:
    disks = "hybrid" if h.hybrid else ("" if h.disks is None else "single")
    labels = ",".join(f"{k}={v}" for k, v in sorted(h.labels.items()))
    return [
        h.name,
        f"{h.address}:{h.port}",
        h.datacenter or "",
        h.rack or "",
        ",".join(h.groups),
        labels,
        disks,
    ]


def enrich_with_progress(app: App, inv: Any) -> Any:
    """The inventory enriched from OVH, with progress lines while it takes long."""
    from fleet.cli.ovh import listing_progress
    from fleet.inventory import enrich

    total = sum(1 for h in inv.hosts if h.service_name)
    progress = listing_progress(app, "OVH servers", total, calls_each=2)
    return enrich(inv, app.provider(), progress=lambda done, _: progress.done(done))


@inventory_group.command("list")
@click.option(
    "--limit", "-l", help="Hosts to list, as a rollout selects them (see `fleet rollout --help`)."
)
@click.option(
    "--ovh", "from_ovh", is_flag=True, help="Enrich from the OVH API (datacenter, rack, disks)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def inventory_list(app: App, limit: str | None, from_ovh: bool, as_json: bool) -> None:
    """List hosts; --limit selects like a rollout does.

    \b
    Example:
      fleet inventory list --ovh -l hybrid
    """
    inv = app.inventory()
    if from_ovh:
        inv = enrich_with_progress(app, inv)
    hosts = inv.select(limit)
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hosts], indent=2))
        return
    table(
        [_host_row(h) for h in hosts],
        ["HOST", "ADDRESS", "DC", "RACK", "GROUPS", "LABELS", "DISKS"],
    )


@inventory_group.command("show")
@click.argument("host")
@click.option("--ovh", "from_ovh", is_flag=True, help="Enrich from the OVH API.")
@pass_app
def inventory_show(app: App, host: str, from_ovh: bool) -> None:
    """Everything fleet knows about HOST (JSON)."""
    inv = app.inventory()
    if from_ovh:
        inv = enrich_with_progress(app, inv)
    click.echo(json.dumps(inv.require(host).to_dict(), indent=2))
