"""``fleet status``: runs and their state; with a run, where every host stands."""

from __future__ import annotations

import json

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table
from fleet.cli.params import Count, option
from fleet.clock import utc_iso
from fleet.escape import printable


@click.command("status")
@click.argument("run_id", required=False, metavar="[RUN]")
@click.argument("host", required=False, metavar="[HOST]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@option("--limit", "count", type=Count(1), default=20, show_default=True, help="Runs listed")
@pass_app
def status_cmd(app: App, run_id: str | None, host: str | None, as_json: bool, count: int) -> None:
    """Runs and their state; with RUN, where every host stands; with RUN HOST, every step
    of that host with what it printed (the tail of each stream, control characters escaped),
    then its record: what its guard decided (disks taken and not, why) and the identities its
    stages found or made (array and filesystem UUIDs).

    \b
    Example:
      fleet status r20261125-101500-ab12 --json
      fleet status r20261125-101500-ab12 web-07
    """
    if run_id is not None:
        app.run_record(run_id)  # an unknown run is a usage error, as for resume and report
    if run_id is not None and host is not None:
        _host_status(app, run_id, host, as_json)
        return
    from fleet.clock import SystemClock
    from fleet.status import run_state, run_status

    now = SystemClock().now()
    if run_id is None:
        runs = app.store.list_runs(count)
        states = {r.id: run_state(r, now) for r in runs}
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "state": states[r.id][0],
                            "reason": states[r.id][1],
                            "plan": r.plan_name,
                            "hosts": len(r.hosts),
                            "owner": str(r.owner),
                            "created_at": utc_iso(r.created_at) if r.created_at else None,
                        }
                        for r in runs
                    ],
                    indent=2,
                )
            )
            return
        table(
            [
                [
                    r.id,
                    states[r.id][0],
                    r.plan_name,
                    str(len(r.hosts)),
                    f"{r.created_at:%Y-%m-%d %H:%M}" if r.created_at else "",
                    states[r.id][1] or "",
                ]
                for r in runs
            ],
            ["RUN", "STATE", "PLAN", "HOSTS", "STARTED (UTC)", "REASON"],
        )
        return
    status = run_status(app.store, run_id, now)
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    reason = f" ({status['reason']})" if status["reason"] else ""
    click.echo(printable(f"run {status['id']}: {status['state']}{reason}"))
    table(
        [
            [h["host"], h["state"], h["where"] or "", _last_line(h["message"])]
            for h in status["hosts"]
        ],
        ["HOST", "STATE", "STAGE/STEP", "LAST MESSAGE"],
    )


def _last_line(message: str | None, limit: int = 200) -> str:
    """A message's last non-blank line (an output excerpt spans several), cut to ``limit``."""
    lines = [x for x in (message or "").splitlines() if x.strip()]
    return lines[-1][:limit] if lines else ""


def _host_status(app: App, run_id: str, host: str, as_json: bool) -> None:
    from fleet.reports.records import decision_lines
    from fleet.status import host_steps

    steps = host_steps(app.store, run_id, host)
    if as_json:
        click.echo(json.dumps(steps, indent=2))
        return
    click.echo(printable(f"run {run_id}, host {host}: {steps['state']}"))
    for step in steps["steps"]:
        took = f" in {step['duration']:.2f} s" if "duration" in step else ""
        code = f" (exit {step['exit_code']})" if "exit_code" in step else ""
        click.echo("\n" + printable(f"{step['step']}: {step['outcome']}{code}{took}"))
        output = step.get("output", {})
        for stream in ("stdout", "stderr"):
            for line in output.get(stream, "").splitlines():
                mark = "  | " if stream == "stdout" else "  ! "
                click.echo(mark + printable(line))
        if output.get("truncated"):
            click.echo("  (output truncated: the tail is kept)")
        if step.get("excerpt") and not output:
            click.echo("  " + printable(step["excerpt"]))
    record = dict(steps["record"])
    lines = decision_lines(record.pop("decisions", {}))
    if lines or record:
        click.echo("")
    for line in lines:
        click.echo(printable(line))
    for key, value in record.items():
        click.echo(printable(f"{key}: {value}"))
