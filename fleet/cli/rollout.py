"""``fleet rollout``, ``fleet resume`` and ``fleet abort``: start, continue and end runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import load_plan, output_flag, parse_vars, rollout_flags, rollout_options
from fleet.cli.wiring import audit_approval, claim, execute, finish, live_output
from fleet.errors import UsageError
from fleet.escape import printable

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import HostPlan, Plan


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
    "--approve",
    "approve_preview",
    metavar="PREVIEW",
    help="Run only what `fleet plan PLAN --probe` showed: a host whose guard decides anything "
    "else is refused.",
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
    "--confirm",
    metavar="COUNT|HOSTS",
    help="For a plan with destructive steps: how many hosts they run on, or those hosts "
    "(comma-separated), as `fleet plan --summary` lists them.",
)
@click.option(
    "--workers/--in-process",
    default=None,
    help="Run each host's pipeline on Celery workers (`fleet worker`), from its datacenter's "
    "queue; the batches and budget stay here, and the OVH rate limit is shared with the "
    "workers. Default: the rollout.workers setting.",
)
@click.option(
    "--show-output",
    is_flag=True,
    help="Print every step's output as it ends, a line at a time prefixed by the host "
    "(it is kept either way: `fleet status RUN HOST`).",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Run only the read-only checks on every host and report what would change; no run, "
    "no lease, nothing applied.",
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
    approve_preview: str | None,
    windows: tuple[str, ...],
    windows_file: str | None,
    window_hosts: bool,
    confirm: str | None,
    show_output: bool,
    workers: bool | None,
    check_only: bool,
    **kw: Any,
) -> None:
    """Apply PLAN to the selected hosts in rolling batches, under a failure budget.

    Canary first, then the next batches; a host takes its lease before anything runs on it.
    When the budget is spent no new host starts and the run halts until `fleet resume RUN` or
    `fleet abort RUN`. Ctrl-C once: finish in-flight steps and halt; twice: cut them.

    A plan with destructive steps runs only with --confirm: the number of hosts they run on,
    or their names (at a terminal, fleet asks). A plan with a `kind: reinstall` stage is
    refused unless --approve-reinstall names exactly the selected hosts, or says `all`. Both
    are kept with the run.

    --approve PREVIEW holds the run to what `fleet plan PLAN --probe` showed (same plan and
    parameters, every selected host previewed); with `rollout.require_preview` set, a
    destructive plan that can be previewed runs only so.

    \b
    Example:
      fleet rollout plans/app.yaml -l hybrid --batches 1,10%,100% --by datacenter --max-failures 2
    """
    from fleet.engine.runs import create_run
    from fleet.schedule import window_hooks

    options = rollout_options(app.settings.get("rollout.concurrency"), **kw)
    in_windows = window_hooks(windows, [windows_file] if windows_file else [], window_hosts)
    plan = load_plan(plan_ref, variables)
    workers = app.settings.get("rollout.workers") if workers is None else workers
    if workers:  # from here on, this process's OVH calls share the workers' rate limit
        from fleet.cli.dispatching import share_pacing

        share_pacing(app)
    hosts = app.hosts(limit)
    from fleet.cli.confirm import confirm_destructive
    from fleet.plan import render_for_host
    from fleet.stages.reinstall.approval import approval

    rendered = [render_for_host(plan, h) for h in hosts]  # undefined variables refused first
    check_provider_stages(rendered, hosts)
    if check_only:
        from fleet.cli.preflight import check_only as run_checks_only

        run_checks_only(app, rendered, hosts, options.concurrency)
    approved = approval(plan, hosts, approve_reinstall)
    approved.update(confirm_destructive(plan, rendered, confirm))
    approved |= preview_approval(app, plan, hosts, rendered, approve_preview)
    if workers:
        from fleet.cli.dispatching import check_workers

        check_workers(app, hosts)
    # windows and every input are kept with the run, so that `fleet resume` uses them as well
    kept = {
        "windows": list(windows),
        "windows_file": windows_file,
        "window_hosts": window_hosts,
        "wait_for_leases": wait_for_leases,
        "workers": workers,
    }
    inputs = {"plan": plan_ref, "vars": parse_vars(variables), "limit": limit}
    run = create_run(app.store, plan, hosts, {**options.to_dict(), **approved, **kept}, inputs)
    audit_approval(app, run.id, approved)
    click.echo(printable(f"run {run.id}: {plan.name} on {len(hosts)} hosts"), err=True)
    finish(
        execute(
            app,
            run,
            plan,
            hosts,
            options,
            output,
            live_output(app, output, run, show_output),
            wait_for_leases=wait_for_leases,
            configure=in_windows,
        ),
        app,
    )


def check_provider_stages(rendered: list[HostPlan], hosts: list[Host]) -> None:
    """Refuse, before any run exists, hosts whose plan needs OVH's API but that have no
    ``ovh_service`` (rescue, disk and reinstall stages; a reboot through the API)."""
    from fleet.stages.boot import ovh_gaps

    lacking = ovh_gaps(rendered, hosts)
    if lacking:
        raise UsageError(
            f"no ovh_service for hosts whose plan goes through OVH's API: {'; '.join(lacking)}",
            hint="add ovh_service to these hosts, or use a mode that stays on the installed "
            "system (hybrid-raid: --var mode=live reboots over SSH)",
        )


def preview_approval(
    app: App, plan: Plan, hosts: list[Host], rendered: list[HostPlan], preview: str | None
) -> dict[str, Any]:
    from fleet.engine.preview import approved_preview, preview_stages

    if preview is not None:
        return approved_preview(app.store, preview, plan, hosts)
    destructive = any(hp.destructive_steps for hp in rendered)
    if destructive and preview_stages(plan) and app.settings.get("rollout.require_preview"):
        raise UsageError(
            f"plan {plan.name} destroys data and rollout.require_preview is set",
            hint=f"preview first: fleet plan {plan.source} --probe (with the same --var and "
            "--limit), then roll out with --approve PREVIEW",
        )
    return {}


@click.command("resume")
@click.argument("run_id", metavar="RUN")
@output_flag
@click.option(
    "--accept-plan-change",
    is_flag=True,
    help="Resume although the plan file changed since the run started (journaled).",
)
@click.option("--show-output", is_flag=True, help="Print every step's output as it ends.")
@pass_app
def resume_cmd(
    app: App, run_id: str, output: str, accept_plan_change: bool, show_output: bool
) -> None:
    """Continue a halted, failed or crashed run with the inputs it was started with (plan,
    --var values, hosts, batches, windows, options): finished steps are skipped, an
    interrupted step is re-checked before anything is re-applied, hosts never reached are run.

    One process owns a run at a time: a run whose owner still lives is refused (exit 4, naming
    it); a dead owner's run is taken over, and the takeover is journaled. A plan file edited
    since the run started is refused unless --accept-plan-change says so.

    \b
    Example:
      fleet resume r20261125-101500-ab12
    """
    from fleet.engine.rollout import RolloutOptions
    from fleet.engine.runs import check_inputs, check_resumable, hosts_of, plan_for_resume
    from fleet.schedule import window_hooks
    from fleet.store.base import Fence

    store = app.store
    run = app.run_record(run_id)
    check_resumable(run)
    plan = plan_for_resume(run)
    change = check_inputs(run, plan, accept=accept_plan_change)
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
    lease = claim(app, run)
    store.set_run_state(run.id, "running", None, fence=Fence(run.id, lease.token))
    if change:
        click.echo(f"note: {change}; resuming as asked (--accept-plan-change)", err=True)
    store.audit("run.resume", run_id=run.id, detail={"was": run.state, "plan_hash": plan.hash})
    finish(
        execute(
            app,
            run,
            plan,
            hosts_of(run),
            options,
            output,
            live_output(app, output, run, show_output),
            resuming=True,
            configure=in_windows,
            wait_for_leases=float(kept.get("wait_for_leases") or 0.0),
            lease=lease,
            inputs_change=change,
        ),
        app,
    )


@click.command("abort")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--reason",
    default="aborted by the operator",
    show_default=True,
    help="Why, for the run record and the audit trail.",
)
@pass_app
def abort_cmd(app: App, run_id: str, reason: str) -> None:
    """End a halted, failed or crashed run for good (it cannot be resumed afterwards).

    Like a resume, the abort takes the run over from a dead owner (refused while the owner
    lives: stop it with Ctrl-C first), then gives up the run's host leases, so that a new
    rollout can take those hosts at once.

    \b
    Example:
      fleet abort r20261125-101500-ab12 --reason 'bad plan'
    """
    from fleet.store.base import Fence

    store = app.store
    run = app.run_record(run_id)
    if run.state in ("done", "aborted"):
        raise UsageError(f"run {run_id} is already {run.state}")
    lease = claim(app, run)
    for held in store.list_leases():  # re-issued to this process by the claim
        if held.owner.run_id == run_id and held.owner.same_process(lease.owner):
            store.release_lease(held)
    store.set_run_state(run_id, "aborted", reason, fence=Fence(run_id, lease.token))
    store.audit("run.abort", run_id=run_id, detail={"was": run.state, "reason": reason})
    store.release_run(lease)
    click.echo(f"run {run_id} aborted")
