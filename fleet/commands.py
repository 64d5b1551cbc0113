"""fleet's subcommands. Wiring helpers live in :mod:`fleet.cli`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fleet.cli import App, cli, execute, finish, pass_app
from fleet.errors import UsageError

if TYPE_CHECKING:
    from fleet.plan import Plan


def load_plan(ref: str, variables: tuple[str, ...] = ()) -> Plan:
    """A plan file path, or ``builtin:NAME`` for the plans shipped in fleet.plans."""
    from fleet.plan import load_plan_file
    from fleet.plans import builtin_plan

    params = parse_vars(variables)
    if ref.startswith("builtin:") or not ref.endswith((".yaml", ".yml")):
        return builtin_plan(ref.removeprefix("builtin:"), params)
    path = Path(ref)
    if not path.is_file():
        raise UsageError(f"plan file {ref} does not exist")
    plan = load_plan_file(path)
    if params:
        plan = plan.model_copy(update={"vars": {**plan.vars, **params}})
    return plan


def parse_vars(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def rollout_options(**kw: Any) -> Any:
    from fleet.rollout import RolloutOptions

    if kw["max_failures"] is not None and kw["max_ratio"] is not None:
        raise UsageError("give --max-failures or --max-failure-ratio, not both")
    if kw["max_failures"] is None and kw["max_ratio"] is None:
        kw["max_failures"] = 0
    return RolloutOptions(**kw)


def parse_duration(text: str, flag: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        return float(number) * units[unit]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a duration like 30s, 5m, 1h") from None


def rollout_flags(f: Any) -> Any:
    options = [
        click.option(
            "--limit", "-l", help="Hosts: names, groups, globs, label:k=v, dc:NAME, hybrid, !x, &y."
        ),
        click.option(
            "--batches",
            default="1,100%",
            show_default=True,
            help="Batch sizes: counts or percentages; the last repeats.",
        ),
        click.option(
            "--by", help="Spread batches across this label (datacenter, rack, or a label name)."
        ),
        click.option(
            "--concurrency",
            "-c",
            type=int,
            default=None,
            help="Hosts at once (default: rollout.concurrency).",
        ),
        click.option(
            "--max-failures", type=int, help="Halt when more hosts than this failed (default 0)."
        ),
        click.option(
            "--max-failure-ratio",
            "max_ratio",
            type=float,
            help="Halt when this share of started hosts failed.",
        ),
        click.option(
            "--bake", default="0s", show_default=True, help="Wait between batches (30s, 5m)."
        ),
        click.option(
            "--gate", metavar="CMD", help="Local command run between batches; non-zero halts."
        ),
        click.option(
            "--wait-for-leases", default="0s", help="Wait this long for a host held by another run."
        ),
        click.option(
            "--output",
            "-o",
            type=click.Choice(["plain", "json"]),
            default="plain",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cli.command("plan")
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
    from fleet.batching import make_batches
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


@cli.command("rollout")
@click.argument("plan_ref", metavar="PLAN")
@rollout_flags
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a plan variable."
)
@click.option(
    "--approve-reinstall",
    metavar="HOSTS|all",
    help="Let the plan's reinstall stages wipe exactly these hosts (comma-separated), or all.",
)
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="SPEC",
    help="Maintenance window, repeatable: 'Sat 02:00-05:00 Europe/Paris', 'deny ... on dc:gra3'.",
)
@click.option("--windows", "windows_file", metavar="FILE", help="YAML file of allow/deny windows.")
@click.option(
    "--window-hosts", is_flag=True, help="Also start no new host (not only batch) outside."
)
@pass_app
def rollout_cmd(
    app: App,
    /,
    plan_ref: str,
    limit: str | None,
    variables: tuple[str, ...],
    output: str,
    wait_for_leases: str,
    approve_reinstall: str | None,
    windows: tuple[str, ...],
    windows_file: str | None,
    window_hosts: bool,
    **kw: Any,
) -> None:
    """Apply PLAN to the selected hosts in rolling batches, under a failure budget.

    Canary first, then the next batches; a host takes its lease before anything runs on it.
    When the budget is spent no new host starts and the run halts until `fleet resume RUN` or
    `fleet abort RUN`. Ctrl-C once: finish in-flight steps and halt; twice: cut them.

    A plan with a `kind: reinstall` stage (destructive) is refused unless --approve-reinstall
    names exactly the selected hosts, or says `all`; the approval is kept with the run.

    \b
    Example:
      fleet rollout plans/app.yaml -l hybrid --batches 1,10%,100% --by datacenter --max-failures 2
    """
    from fleet.runs import create_run
    from fleet.schedule import window_hooks

    kw["bake"] = parse_duration(kw["bake"], "--bake")
    kw["concurrency"] = kw["concurrency"] or app.settings.get("rollout.concurrency")
    options = rollout_options(**kw)
    in_windows = window_hooks(windows, [windows_file] if windows_file else [], window_hosts)
    plan = load_plan(plan_ref, variables)
    hosts = app.hosts(limit)
    from fleet.plan import render_for_host
    from fleet.reinstall import approval

    for host in hosts:  # every undefined variable is refused before any host is contacted
        render_for_host(plan, host)
    approved = approval(plan, hosts, approve_reinstall)
    # windows are kept with the run, so that `fleet resume` waits for them as well
    kept = {"windows": list(windows), "windows_file": windows_file, "window_hosts": window_hosts}
    run = create_run(app.store, plan, hosts, {**options.to_dict(), **approved, **kept})
    click.echo(f"run {run.id}: {plan.name} on {len(hosts)} hosts", err=True)
    finish(
        execute(
            app,
            run,
            plan,
            hosts,
            options,
            output,
            wait_for_leases=parse_duration(wait_for_leases, "--wait-for-leases"),
            configure=in_windows,
        )
    )


@cli.command("run")
@click.argument("commands", nargs=-1)
@click.option(
    "--commands-file", type=click.Path(exists=True, dir_okay=False), help="One command a line."
)
@click.option("--limit", "-l", help="Hosts (see `fleet rollout --help`).")
@click.option("--forks", "-f", "concurrency", type=int, default=None, help="Hosts at once.")
@click.option("--batches", default="1,100%", show_default=True)
@click.option("--max-failures", type=int, default=None)
@pass_app
def run_cmd(
    app: App,
    commands: tuple[str, ...],
    commands_file: str | None,
    limit: str | None,
    concurrency: int | None,
    batches: str,
    max_failures: int | None,
) -> None:
    """Run ad-hoc commands on hosts, in order, through the same engine as a rollout
    (journal, leases, batches), printing each output line prefixed by the host.

    \b
    Example:
      fleet run -l 'web-*' 'uptime' 'df -h /'
    """
    from fleet.plan import adhoc_plan
    from fleet.report import OutputPrinter
    from fleet.rollout import RolloutOptions
    from fleet.runs import create_run

    lines = list(commands)
    if commands_file:
        lines += [x for x in Path(commands_file).read_text().splitlines() if x.strip()]
    if not lines:
        raise UsageError("no command given", hint="fleet run 'uptime' or --commands-file FILE")
    plan = adhoc_plan(lines)
    hosts = app.hosts(limit)
    options = RolloutOptions(
        batches=batches,
        concurrency=concurrency or app.settings.get("rollout.concurrency"),
        max_failures=max_failures,
    )
    run = create_run(app.store, plan, hosts, options.to_dict())
    finish(execute(app, run, plan, hosts, options, "plain", extra=[OutputPrinter()]))


@cli.command("resume")
@click.argument("run_id", metavar="RUN")
@click.option("--output", "-o", type=click.Choice(["plain", "json"]), default="plain")
@pass_app
def resume_cmd(app: App, run_id: str, output: str) -> None:
    """Continue a halted, failed or crashed run: finished steps are skipped, an interrupted
    step is re-checked before anything is re-applied, hosts never reached are run.

    \b
    Example:
      fleet resume r20261125-101500-ab12
    """
    from fleet.rollout import RolloutOptions
    from fleet.runs import check_resumable, hosts_of, plan_for_resume, take_over_dead_leases
    from fleet.schedule import window_hooks

    store = app.store
    run = store.get_run(run_id)
    check_resumable(run)
    plan = plan_for_resume(run)
    kept = run.options
    windows_file = kept.get("windows_file")
    in_windows = window_hooks(
        kept.get("windows") or [],
        [windows_file] if windows_file else [],
        bool(kept.get("window_hosts")),
    )
    options = RolloutOptions(
        **{k: v for k, v in run.options.items() if k in RolloutOptions.__dataclass_fields__}
    )
    take_over_dead_leases(store, run)
    if plan.hash != run.plan_hash:
        click.echo(
            f"note: plan changed since the run started ({run.plan_hash} -> {plan.hash})", err=True
        )
    store.set_run_state(run.id, "running", None)
    finish(
        execute(app, run, plan, hosts_of(run), options, output, resuming=True, configure=in_windows)
    )


@cli.command("abort")
@click.argument("run_id", metavar="RUN")
@click.option("--reason", default="aborted by the operator")
@pass_app
def abort_cmd(app: App, run_id: str, reason: str) -> None:
    """End a halted run for good (it cannot be resumed afterwards).

    \b
    Example:
      fleet abort r20261125-101500-ab12 --reason 'bad plan'
    """
    run = app.store.get_run(run_id)
    if run.state in ("done", "aborted"):
        raise UsageError(f"run {run_id} is already {run.state}")
    app.store.set_run_state(run_id, "aborted", reason)
    click.echo(f"run {run_id} aborted")


@cli.command("halt")
@click.option("--reason", required=True, help="Why: shown by every rollout that stops.")
@pass_app
def halt_cmd(app: App, reason: str) -> None:
    """Global kill switch: every running and scheduled rollout starts no new host or batch.

    \b
    Example:
      fleet halt --reason 'storage alerts in gra3'
    """
    from fleet.runs import current_owner

    app.store.set_halt(str(current_owner()), reason)
    click.echo("halted: no rollout will start a host until `fleet unhalt`")


@cli.command("unhalt")
@pass_app
def unhalt_cmd(app: App) -> None:
    """Lift the global halt. Halted runs stay halted: resume each with `fleet resume RUN`."""
    from fleet.runs import current_owner

    cleared = app.store.clear_halt(str(current_owner()))
    click.echo("halt lifted" if cleared else "no halt was set")


from fleet import commands_admin  # noqa: E402,F401
