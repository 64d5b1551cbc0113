"""``fleet rollout``, ``fleet resume`` and ``fleet abort``: start, continue and end runs."""

from __future__ import annotations

from typing import Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import load_plan, rollout_flags, rollout_options
from fleet.cli.wiring import audit_approval, execute, finish, live_output
from fleet.errors import UsageError


@click.command("rollout")
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
@click.option(
    "--show-output",
    is_flag=True,
    help="Print every step's output as it ends, a line at a time prefixed by the host "
    "(it is kept either way: `fleet status RUN HOST`).",
)
@pass_app
def rollout_cmd(
    app: App,
    /,
    plan_ref: str,
    limit: str | None,
    variables: tuple[str, ...],
    output: str,
    wait_for_leases: float,
    approve_reinstall: str | None,
    windows: tuple[str, ...],
    windows_file: str | None,
    window_hosts: bool,
    show_output: bool,
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
    from fleet.engine.runs import create_run
    from fleet.schedule import window_hooks

    options = rollout_options(app.settings.get("rollout.concurrency"), **kw)
    in_windows = window_hooks(windows, [windows_file] if windows_file else [], window_hosts)
    plan = load_plan(plan_ref, variables)
    hosts = app.hosts(limit)
    from fleet.plan import render_for_host
    from fleet.stages.reinstall.approval import approval

    for host in hosts:  # every undefined variable is refused before any host is contacted
        render_for_host(plan, host)
    approved = approval(plan, hosts, approve_reinstall)
    # windows are kept with the run, so that `fleet resume` waits for them as well
    kept = {"windows": list(windows), "windows_file": windows_file, "window_hosts": window_hosts}
    run = create_run(app.store, plan, hosts, {**options.to_dict(), **approved, **kept})
    audit_approval(app, run.id, approved)
    click.echo(f"run {run.id}: {plan.name} on {len(hosts)} hosts", err=True)
    finish(
        execute(
            app,
            run,
            plan,
            hosts,
            options,
            output,
            live_output(output, run, show_output),
            wait_for_leases=wait_for_leases,
            configure=in_windows,
        )
    )


@click.command("resume")
@click.argument("run_id", metavar="RUN")
@click.option("--output", "-o", type=click.Choice(["plain", "json"]), default="plain")
@click.option("--show-output", is_flag=True, help="Print every step's output as it ends.")
@pass_app
def resume_cmd(app: App, run_id: str, output: str, show_output: bool) -> None:
    """Continue a halted, failed or crashed run: finished steps are skipped, an interrupted
    step is re-checked before anything is re-applied, hosts never reached are run.

    \b
    Example:
      fleet resume r20261125-101500-ab12
    """
    from fleet.engine.rollout import RolloutOptions
    from fleet.engine.runs import check_resumable, hosts_of, plan_for_resume, take_over_dead_leases
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
    store.audit("run.resume", run_id=run.id, detail={"was": run.state, "plan_hash": plan.hash})
    finish(
        execute(
            app,
            run,
            plan,
            hosts_of(run),
            options,
            output,
            live_output(output, run, show_output),
            resuming=True,
            configure=in_windows,
        )
    )


@click.command("abort")
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
    app.store.audit("run.abort", run_id=run_id, detail={"was": run.state, "reason": reason})
    click.echo(f"run {run_id} aborted")
