"""``fleet halt`` and ``fleet unhalt``: the global kill switch every rollout honours."""

from __future__ import annotations

import click

from fleet.cli.app import App, pass_app


@click.command("halt")
@click.option("--reason", required=True, help="Why: shown by every rollout that stops.")
@pass_app
def halt_cmd(app: App, reason: str) -> None:
    """Global kill switch: every running and scheduled rollout starts no new host or batch.

    \b
    Example:
      fleet halt --reason 'storage alerts in gra3'
    """
    app.store.set_halt(str(app.actor), reason)
    click.echo("halted: no rollout will start a host until `fleet unhalt`")


@click.command("unhalt")
@pass_app
def unhalt_cmd(app: App) -> None:
    """Lift the global halt. Halted runs stay halted: resume each with `fleet resume RUN`."""
    cleared = app.store.clear_halt(str(app.actor))
    click.echo("halt lifted" if cleared else "no halt was set")
