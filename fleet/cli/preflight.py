"""``fleet preflight``: the checks a rollout runs before its first batch, on their own."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import load_plan
from fleet.escape import printable

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import HostPlan, Plan
    from fleet.preflight import Report
    from fleet.transport.base import CommandResult


def run_checks(
    app: App,
    plan: Plan,
    hosts: list[Host],
    windows: tuple[str, ...] = (),
    window_files: tuple[str, ...] = (),
) -> Report:
    """Preflight ``plan`` on ``hosts`` with this invocation's settings (see
    :mod:`fleet.preflight`)."""
    from fleet.cli.wiring import connector
    from fleet.preflight import Inputs, run_preflight

    ssh = connector(app)

    def credentials(host: Host) -> None:
        ssh.open(host.endpoint).close()  # checks the key (or agent); contacts nothing

    key = app.settings.path("rescue.ssh_public_key")
    inputs = Inputs(
        credentials=credentials,
        rescue_public_key=str(key) if key else None,
        provider=app.provider,
        windows=windows,
        window_files=window_files,
    )
    return run_preflight(plan, hosts, inputs)


def check_only(app: App, rendered: list[HostPlan], hosts: list[Host], concurrency: int) -> NoReturn:
    """``fleet rollout --check``: every host's read-only checks, what would change, and exit
    (0, or 1 when a host could not be checked); no run record, no lease, nothing applied."""
    from fleet.cli.wiring import connector
    from fleet.engine.checkmode import Runner, check_all, summary
    from fleet.transport.base import KeyExpectation

    ssh = connector(app)
    endpoints = {h.name: h.endpoint for h in hosts}

    def session(name: str) -> tuple[Runner, Callable[[], None]]:
        transport = ssh.open(endpoints[name], KeyExpectation())

        def run(command: str, timeout: float, sudo: bool) -> CommandResult:
            call = transport.sudo if sudo else transport.run
            return call(command, timeout=timeout)

        return run, transport.close

    checks = check_all(rendered, session, concurrency)
    for verdict in checks:
        click.echo(printable(verdict.line()))
    click.echo(summary(checks))
    sys.exit(1 if any(c.error for c in checks) else 0)


@click.command("preflight")
@click.argument("plan_ref", metavar="PLAN")
@click.option("--limit", "-l", help="Hosts to check, as a rollout selects them.")
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a plan variable."
)
@click.option(
    "--window", "windows", multiple=True, metavar="SPEC", help="Maintenance window to parse."
)
@click.option("--windows", "windows_file", metavar="FILE", help="YAML file of windows to parse.")
@pass_app
def preflight_cmd(
    app: App,
    plan_ref: str,
    limit: str | None,
    variables: tuple[str, ...],
    windows: tuple[str, ...],
    windows_file: str | None,
) -> None:
    """Check, before any host is touched, what would fail on every host: the plan renders,
    python calls resolve, every host has an address, every SSH key file is readable, the OVH
    credentials work (one call, when a stage needs the API) and windows parse.

    `fleet rollout` and `fleet resume` run the same checks before their first batch; a
    failure exits 3 and starts nothing. Changes nothing anywhere.

    \b
    Example:
      fleet preflight examples/plans/rescue-rehearsal.yaml --limit hybrid
    """
    plan = load_plan(plan_ref, variables)
    hosts = app.hosts(limit)
    files = (windows_file,) if windows_file else ()
    report = run_checks(app, plan, hosts, windows, files)
    click.echo(f"preflight of plan {plan.name} on {len(hosts)} hosts")
    click.echo("\n".join(report.lines()))
    report.raise_for_problems()
    click.echo("preflight passed; nothing was changed")
