"""``fleet plan``: what a rollout would do, per host. Changes nothing anywhere."""

from __future__ import annotations

import json

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import load_plan


@click.command("plan")
@click.argument("plan_ref", metavar="PLAN")
@click.option("--limit", "-l", help="Hosts to show (see `fleet rollout --help`).")
@click.option("--batches", default="1,100%", show_default=True)
@click.option("--by", help="Spread batches across this label.")
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a plan variable."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def plan_cmd(
    app: App,
    plan_ref: str,
    limit: str | None,
    batches: str,
    by: str | None,
    variables: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show what a rollout of PLAN would do, per host. Changes nothing anywhere.

    PLAN is a YAML file or a built-in plan name (see docs/plans.md).

    \b
    Example:
      fleet plan plans/app.yaml --limit 'dc:gra3,&hybrid' --batches 1,10%,100%
    """
    from fleet.engine.batching import make_batches
    from fleet.plan import render_for_host

    plan = load_plan(plan_ref, variables)
    hosts = app.hosts(limit)
    rendered = [render_for_host(plan, h) for h in hosts]
    groups = make_batches(hosts, batches, by)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "plan": plan.name,
                    "hash": plan.hash,
                    "hosts": [r.to_dict() for r in rendered],
                    "batches": [[h.name for h in b] for b in groups],
                    "leases": [h.name for h in hosts],
                },
                indent=2,
            )
        )
        return
    from fleet.render import print_plan

    print_plan(plan, rendered, groups)
