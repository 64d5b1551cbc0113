"""``fleet plan``: what a rollout would do, per host. Changes nothing anywhere."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import load_plan

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import HostPlan, Plan


@click.command("plan")
@click.argument("plan_ref", metavar="PLAN")
@click.option("--limit", "-l", help="Hosts to show (see `fleet rollout --help`).")
@click.option("--batches", default="1,100%", show_default=True)
@click.option("--by", help="Spread batches across this label.")
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a plan variable."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--diff",
    is_flag=True,
    help="Also connect to each host (read-only) and show what its put and template steps "
    "would change: a unified diff per template.",
)
@click.option(
    "--probe",
    is_flag=True,
    help="Connect and run the plan's read-only stages (facts, guard): show per host the disks "
    "taken and not taken and why, and record the preview for `fleet rollout --approve`.",
)
@pass_app
def plan_cmd(
    app: App,
    plan_ref: str,
    limit: str | None,
    batches: str,
    by: str | None,
    variables: tuple[str, ...],
    as_json: bool,
    diff: bool,
    probe: bool,
) -> None:
    """Show what a rollout of PLAN would do, per host. Changes nothing anywhere.

    PLAN is a YAML file or a built-in plan name (see docs/plans.md). Without --diff or
    --probe no host is contacted; with --diff, each host is read (checksums and current file
    contents only); with --probe, fleet runs only the plan's read-only stages on the system
    each host runs now and prints what they decided.

    \b
    Example:
      fleet plan plans/app.yaml --limit 'dc:gra3,&hybrid' --batches 1,10%,100%
      fleet plan plans/app.yaml --limit web --diff
      fleet plan hybrid-raid --limit hybrid --probe
    """
    from fleet.engine.batching import make_batches
    from fleet.plan import render_for_host

    plan = load_plan(plan_ref, variables)
    hosts = app.hosts(limit)
    rendered = [render_for_host(plan, h) for h in hosts]
    from fleet.stages.boot import ovh_gaps

    for gap in ovh_gaps(rendered, hosts):
        click.echo(f"warning: no ovh_service, yet the plan goes through OVH's API: {gap}", err=True)
    if probe:
        _probe(app, plan, hosts, as_json)
        return
    groups = make_batches(hosts, batches, by)
    diffs = _diffs(app, plan, hosts, rendered) if diff else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "plan": plan.name,
                    "hash": plan.hash,
                    "hosts": [r.to_dict() for r in rendered],
                    "batches": [[h.name for h in b] for b in groups],
                    "leases": [h.name for h in hosts],
                    **({"diff": diffs} if diffs is not None else {}),
                },
                indent=2,
            )
        )
        return
    from fleet.render import print_plan

    print_plan(plan, rendered, groups)
    if diffs is not None:
        click.echo("\nfile steps against the hosts (read-only):")
        for name, lines in diffs.items():
            click.echo(f"host {name}")
            for line in lines or ["  no file steps"]:
                click.echo(line)


def _diffs(
    app: App, plan: Plan, hosts: list[Host], rendered: list[HostPlan]
) -> dict[str, list[str]]:
    """Per host, what its file steps would change (hosts read in parallel, read-only)."""
    from concurrent.futures import ThreadPoolExecutor

    from fleet.cli.wiring import connector
    from fleet.preview import safe_diff
    from fleet.transport.base import KeyExpectation

    ssh = connector(app)

    def one(pair: tuple[Host, HostPlan]) -> list[str]:
        host, hp = pair
        return safe_diff(plan, host, hp, ssh.open(host.endpoint, KeyExpectation()))

    with ThreadPoolExecutor(max(1, min(20, len(hosts)))) as pool:
        return dict(
            zip(
                [h.name for h in hosts],
                pool.map(one, zip(hosts, rendered, strict=True)),
                strict=True,
            )
        )


def _probe(app: App, plan: Plan, hosts: list[Host], as_json: bool) -> None:
    import getpass

    from fleet.cli.wiring import connector
    from fleet.engine.preview import Previewer, record_preview, run_preview
    from fleet.render import print_preview

    previewer = Previewer(plan, connector(app), app.store, app.provider,
                          app.settings.get("ssh.key_file"))  # fmt: skip
    results = run_preview(previewer, hosts, app.settings.get("rollout.concurrency"))
    preview = record_preview(app.store, plan, results, getpass.getuser())
    if as_json:
        payload = {"preview": preview.id, "plan": plan.name, "hash": plan.hash,
                   "hosts": [r.to_dict() for r in results]}  # fmt: skip
        click.echo(json.dumps(payload, indent=2))
    else:
        print_preview(plan, results, preview)
