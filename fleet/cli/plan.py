"""``fleet plan``: what a rollout would do, per host or summed up. Changes nothing anywhere."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import batch_flags, load_plan
from fleet.errors import PlanError, UsageError
from fleet.escape import printable

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import HostPlan, Plan
    from fleet.render import Defaults


@click.command("plan")
@click.argument("plan_ref", metavar="PLAN")
@click.option("--limit", "-l", help="Hosts to plan for, as a rollout selects them.")
@batch_flags
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a plan variable."
)
@click.option(
    "--summary",
    is_flag=True,
    help="One screen: hosts that run the same steps grouped, destructive steps and the hosts "
    "they touch, batches by datacenter.",
)
@click.option(
    "--host",
    "only",
    multiple=True,
    metavar="NAME",
    help="Show the steps of this host only (repeatable); batches still cover every host.",
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
    serial_by: str | None,
    max_per: int | None,
    variables: tuple[str, ...],
    summary: bool,
    only: tuple[str, ...],
    as_json: bool,
    diff: bool,
    probe: bool,
) -> None:
    """Show what a rollout of PLAN would do, per host. Changes nothing anywhere.

    PLAN is a YAML file or a built-in plan name (see docs/plans.md). Each step shows its
    timeout and retries; DESTRUCTIVE marks what `fleet rollout` runs only with --confirm.
    On many hosts, --summary fits a screen and --host NAME shows one host in full. Without
    --diff or --probe no host is contacted; with --diff, each host is read (checksums and
    current file contents only); with --probe, fleet runs only the plan's read-only stages on
    the system each host runs now and prints what they decided.

    \b
    Example:
      fleet plan plans/app.yaml --limit 'dc:gra3,&hybrid' --batches 1,10%,100%
      fleet plan builtin:hybrid-raid -l hybrid --summary --serial-by datacenter
      fleet plan builtin:hybrid-raid -l hybrid --host srv-001
      fleet plan plans/app.yaml --limit web --diff
      fleet plan hybrid-raid --limit hybrid --probe
    """
    from fleet.engine.batching import check_topology, make_batches
    from fleet.plan import render_for_host
    from fleet.preflight import check_calls
    from fleet.render import plan_lines

    check_topology(by, serial_by, max_per)
    plan = load_plan(plan_ref, variables)
    hosts = app.hosts(limit)
    rendered = [render_for_host(plan, h) for h in hosts]
    calls = check_calls(rendered)  # a python stage's function that does not exist fails here
    if not calls.ok:
        raise PlanError(calls.problems[0], path=plan.source)
    from fleet.stages.boot import ovh_gaps

    for gap in ovh_gaps(rendered, hosts):
        click.echo(
            printable(f"warning: no ovh_service, yet the plan goes through OVH's API: {gap}"),
            err=True,
        )
    if probe:
        _probe(app, plan, hosts, as_json)
        return
    groups = make_batches(hosts, batches, by, serial_by=serial_by, max_per=max_per)
    shown = _only(rendered, only)
    diffs = _diffs(app, plan, hosts, rendered, {r.host for r in shown}) if diff else None
    if as_json:
        body = {
            "plan": plan.name,
            "hash": plan.hash,
            "hosts": [r.to_dict() for r in shown],
            "batches": [[h.name for h in b] for b in groups],
            "leases": [h.name for h in hosts],
            **({"diff": diffs} if diffs is not None else {}),
        }
        click.echo(json.dumps(body, indent=2))
        return
    lines = plan_lines(plan, shown, groups, _defaults(app), summary=summary, total=len(rendered))
    click.echo("\n".join(lines))
    if diffs is not None:
        click.echo("\nfile steps against the hosts (read-only):")
        for name, changes in diffs.items():
            click.echo(printable(f"host {name}"))
            for line in changes or ["  no file steps"]:
                click.echo(printable(line))


def _diffs(
    app: App, plan: Plan, hosts: list[Host], rendered: list[HostPlan], shown: set[str]
) -> dict[str, list[str]]:
    """Per host shown, what its file steps would change (hosts read in parallel, read-only)."""
    from concurrent.futures import ThreadPoolExecutor

    from fleet.cli.wiring import connector
    from fleet.preview import safe_diff
    from fleet.transport.base import KeyExpectation

    ssh = connector(app)
    pairs = [(h, hp) for h, hp in zip(hosts, rendered, strict=True) if h.name in shown]

    def one(pair: tuple[Host, HostPlan]) -> list[str]:
        host, hp = pair
        return safe_diff(plan, host, hp, ssh.open(host.endpoint, KeyExpectation()))

    with ThreadPoolExecutor(max(1, min(20, len(pairs)))) as pool:
        return dict(zip([h.name for h, _ in pairs], pool.map(one, pairs), strict=True))


def _only(rendered: list[HostPlan], only: tuple[str, ...]) -> list[HostPlan]:
    """The plans of the hosts ``--host`` names (each must be among the selected hosts)."""
    if not only:
        return rendered
    by_name = {r.host: r for r in rendered}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise UsageError(
            f"--host {unknown[0]}: not among the {len(rendered)} selected hosts",
            hint="`fleet inventory list --limit ...` shows what a limit selects",
        )
    return [by_name[n] for n in dict.fromkeys(only)]


def _defaults(app: App) -> Defaults:
    from fleet.render import Defaults

    s = app.settings
    return Defaults(s.get("reboot.timeout"), s.get("rollout.infra_retries"))


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
