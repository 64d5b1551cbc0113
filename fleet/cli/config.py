"""``fleet config``: the effective settings and where each came from."""

from __future__ import annotations

import json

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table


@click.group("config")
def config_group() -> None:
    """fleet's settings."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def config_show(app: App, as_json: bool) -> None:
    """Effective settings and where each came from: flag > FLEET_* env > fleet.toml > default."""
    rows = app.settings.show()
    if as_json:
        click.echo(json.dumps({n: {"value": v, "source": s} for n, v, s in rows}, indent=2))
        return
    click.echo(f"config file: {app.settings.config_file or '(none found)'}")
    table([list(r) for r in rows], ["SETTING", "VALUE", "SOURCE"])
