"""fleet schedule and fleet scheduler: rollouts started at cron times, inside maintenance windows.

The logic lives in :mod:`fleet.schedule`; this module parses flags, validates everything before storing a schedule,
and prints.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import batch_flags
from fleet.cli.params import Count, Duration, Ratio, option, seconds_text
from fleet.clock import SystemClock, utc_iso
from fleet.errors import UsageError
from fleet.store.base import MISSED_POLICIES, ScheduleRecord

if TYPE_CHECKING:
    from fleet.schedule import Scheduler

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@click.group("schedule")
def schedule_group() -> None:
    """Rollouts that start by themselves at cron times (started by `fleet scheduler run`).

    \b
    Times: the cron expression is read in --tz (default UTC) and every instant is stored
    in UTC. On a spring-forward day a start in the skipped hour fires when the clock jumps;
    on a fall-back day a start in the repeated hour fires once, at its first occurrence.
    """


#: Flags stored as durations: kept as ``300s``, which `fleet rollout` reads back.
_DURATIONS = frozenset({"bake", "wait_for_leases"})


def _rollout_args(kw: dict[str, Any]) -> list[str]:
    """The `fleet rollout` arguments (after PLAN) a schedule stores, from the add flags."""
    args: list[str] = []
    for flag, key in (
        ("--limit", "limit"),
        ("--batches", "batches"),
        ("--by", "by"),
        ("--serial-by", "serial_by"),
        ("--max-per", "max_per"),
        ("--concurrency", "concurrency"),
        ("--max-failures", "max_failures"),
        ("--max-failure-ratio", "max_ratio"),
        ("--bake", "bake"),
        ("--gate", "gate"),
        ("--wait-for-leases", "wait_for_leases"),
        ("--windows", "windows_file"),
        ("--confirm", "confirm"),
    ):
        value = kw.get(key)
        if value is not None:
            args += [flag, seconds_text(value) if key in _DURATIONS else str(value)]
    for spec in kw["windows"]:
        args += ["--window", spec]
    for item in kw["variables"]:
        args += ["--var", item]
    if kw["window_hosts"]:
        args.append("--window-hosts")
    return args


def _validate(app: App, plan_ref: str, kw: dict[str, Any]) -> str:
    """Refuse now what would fail at every fire; returns the plan reference to store."""
    from fleet.cli.confirm import CONFIRMED_OPTION, confirm_destructive
    from fleet.cli.options import load_plan, rollout_options
    from fleet.plan import render_for_host
    from fleet.schedule import window_hooks

    rollout_options(
        app.settings.get("rollout.concurrency"),
        batches=kw["batches"] or "1,100%",
        by=kw["by"],
        concurrency=kw["concurrency"],
        max_failures=kw["max_failures"],
        max_ratio=kw["max_ratio"],
        bake=kw["bake"] or 0.0,
        gate=kw["gate"],
        serial_by=kw["serial_by"],
        max_per=kw["max_per"],
    )
    window_hooks(
        kw["windows"], [kw["windows_file"]] if kw["windows_file"] else [], kw["window_hosts"]
    )
    plan = load_plan(plan_ref, kw["variables"])
    rendered = [render_for_host(plan, h) for h in app.hosts(kw["limit"])]
    confirmed = confirm_destructive(plan, rendered, kw["confirm"]).get(CONFIRMED_OPTION)
    if confirmed and kw["confirm"] is None:  # answered at the prompt: kept as the count
        kw["confirm"] = str(len(confirmed))
    path = Path(plan_ref)
    return str(path.resolve()) if plan_ref.endswith((".yaml", ".yml")) else plan_ref


def _expiry(now: datetime, tz: str, for_: str | None, until: str | None) -> datetime | None:
    from fleet.schedule import expiry_after, load_zone, resolve_local

    if for_ and until:
        raise UsageError("give --for or --until, not both")
    if for_:
        return expiry_after(now, tz, for_)
    if until:
        try:
            day = datetime.strptime(until, "%Y-%m-%d").date()  # noqa: DTZ007 (a local date)
        except ValueError:
            raise UsageError(f"--until {until!r}: expected YYYY-MM-DD") from None
        return resolve_local(datetime.combine(day, datetime.min.time()), load_zone(tz))
    return None


@schedule_group.command("add")
@click.argument("name")
@click.option(
    "--plan", "plan_ref", required=True, metavar="PLAN", help="Plan file or builtin:NAME."
)
@click.option(
    "--cron",
    required=True,
    metavar="EXPR",
    help="When: five fields 'M H DOM MON DOW' as in crontab(5), e.g. '30 2 * * 6'.",
)
@click.option("--tz", default="UTC", show_default=True, help="IANA zone the cron is read in.")
@click.option("--limit", "-l", help="Hosts (see `fleet rollout --help`).")
@batch_flags
@option("--concurrency", "-c", type=Count(1), default=None, help="Hosts at once")
@option("--max-failures", type=Count(0), help="Halt when more hosts than this failed")
@option("--max-failure-ratio", "max_ratio", type=Ratio(), help="Halt at this failed share")
@option("--bake", type=Duration(), help="Wait between batches")
@click.option("--gate", metavar="CMD", help="Local command run between batches.")
@option("--wait-for-leases", type=Duration(), help="Wait this long for a host held by another run")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Plan variable.")
@click.option("--window", "windows", multiple=True, metavar="SPEC", help="Maintenance window.")
@click.option("--windows", "windows_file", metavar="FILE", help="YAML file of windows.")
@click.option("--window-hosts", is_flag=True, help="Start no new host outside the window.")
@click.option(
    "--confirm",
    metavar="COUNT|HOSTS",
    help="For a plan with destructive steps: how many hosts they run on, or which (checked "
    "again at every fire).",
)
@click.option(
    "--missed",
    type=click.Choice(MISSED_POLICIES),
    default="skip",
    show_default=True,
    help="Due times missed while no scheduler ran: skip them, or run once.",
)
@click.option("--for", "for_", metavar="SPAN", help="Stop firing after 1y, 6mo, 2w, 30d...")
@click.option("--until", metavar="DATE", help="Stop firing on this local date (YYYY-MM-DD).")
@pass_app
def schedule_add(
    app: App,
    /,
    name: str,
    plan_ref: str,
    cron: str,
    tz: str,
    for_: str | None,
    until: str | None,
    **kw: Any,
) -> None:
    """Add a schedule: a rollout of PLAN at each time of --cron (read in --tz).

    \b
    Examples:
      fleet schedule add storage-nightly --plan plans/app.yaml -l label:role=storage \\
        --cron '30 2 * * *' --tz Europe/Paris --window 'daily 02:00-05:00 Europe/Paris'
      fleet schedule add weekly --plan builtin:hybrid-raid -l hybrid --confirm 12 \\
        --cron '0 2 * * 6' --missed once
    """
    from fleet.schedule import check_cron, load_zone, next_due

    if not _NAME.fullmatch(name):
        raise UsageError(f"schedule name {name!r}: letters, digits, '.', '_' and '-' only")
    check_cron(cron)
    load_zone(tz)
    plan = _validate(app, plan_ref, kw)
    if kw["windows_file"]:
        kw["windows_file"] = str(Path(kw["windows_file"]).resolve())
    now = SystemClock().now()
    record = ScheduleRecord(
        name=name,
        plan=plan,
        cron=cron.strip(),
        tz=tz,
        args=tuple(_rollout_args(kw)),
        missed=kw["missed"],
        created_by=str(app.actor),
        expires_at=_expiry(now, tz, for_, until),
    )
    stored = app.store.add_schedule(record)
    due = next_due(stored.cron, stored.tz, now)
    click.echo(f"schedule {name} added; next due {_when(due, tz)}")


def _when(at: datetime | None, tz: str) -> str:
    from fleet.schedule import load_zone

    if at is None:
        return "-"
    local = at.astimezone(load_zone(tz))
    return f"{utc_iso(at)} ({local:%a %Y-%m-%d %H:%M %Z})"


def _summary(app: App, s: ScheduleRecord, now: datetime) -> dict[str, Any]:
    from fleet.schedule import next_due

    anchor = max(a for a in (now, s.since, s.last_due) if a is not None)
    due = next_due(s.cron, s.tz, anchor)
    expired = s.expires_at is not None and (due is None or due >= s.expires_at)
    fires = app.store.schedule_fires(s.name, 1)
    last = fires[0] if fires else None
    return {
        "name": s.name,
        "state": "paused" if s.paused else "expired" if expired else "active",
        "plan": s.plan,
        "cron": s.cron,
        "tz": s.tz,
        "missed": s.missed,
        "args": list(s.args),
        "next_due": None if expired or due is None else utc_iso(due),
        "expires_at": utc_iso(s.expires_at) if s.expires_at else None,
        "last_due": utc_iso(last.due_at) if last else None,
        "last_outcome": last.outcome if last else None,
        "last_run": last.run_id if last else None,
    }


@schedule_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def schedule_list(app: App, as_json: bool) -> None:
    """List schedules: state, next due time (UTC), last fire and its run."""
    now = SystemClock().now()
    rows = [_summary(app, s, now) for s in app.store.list_schedules()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no schedules (add one with `fleet schedule add`)")
        return
    click.echo(f"{'NAME':<20} {'STATE':<8} {'CRON':<16} {'TZ':<16} {'NEXT DUE (UTC)':<30} LAST")
    for r in rows:
        last = (
            f"{r['last_due']} {r['last_outcome']} {r['last_run'] or ''}" if r["last_due"] else "-"
        )
        click.echo(
            f"{r['name']:<20} {r['state']:<8} {r['cron']:<16} {r['tz']:<16} "
            f"{r['next_due'] or '-':<30} {last.strip()}"
        )


@schedule_group.command("show")
@click.argument("name")
@option(
    "--next", "count", type=Count(1, 1000), default=5, show_default=True, help="Due times shown"
)
@pass_app
def schedule_show(app: App, name: str, count: int) -> None:
    """Show a schedule, its next due times (UTC and local) and its recent fires."""
    from fleet.schedule import next_due

    s = app.store.get_schedule(name)
    summary = _summary(app, s, SystemClock().now())
    for key in ("name", "state", "plan", "cron", "tz", "missed", "expires_at"):
        click.echo(f"{key + ':':<12} {summary[key] or '-'}")
    click.echo(f"{'rollout:':<12} {' '.join(s.args) or '-'}")
    at = SystemClock().now()
    for _ in range(max(0, min(count, 100))):
        due = next_due(s.cron, s.tz, at)
        if due is None:
            break
        click.echo(f"  next  {_when(due, s.tz)}")
        at = due
    for fire in app.store.schedule_fires(name, 10):
        run = fire.run_id or "-"
        click.echo(f"  fired {utc_iso(fire.due_at)} {fire.outcome:<8} {run} {fire.detail or ''}")


@schedule_group.command("remove")
@click.argument("name")
@pass_app
def schedule_remove(app: App, name: str) -> None:
    """Remove a schedule (runs it started are kept)."""
    if not app.store.remove_schedule(name, str(app.actor)):
        raise UsageError(f"no schedule {name!r}", hint="`fleet schedule list` lists them")
    click.echo(f"schedule {name} removed")


@schedule_group.command("pause")
@click.argument("name")
@pass_app
def schedule_pause(app: App, name: str) -> None:
    """Pause a schedule: it starts nothing until `fleet schedule resume`."""
    app.store.set_schedule_paused(name, True, str(app.actor))
    click.echo(f"schedule {name} paused")


@schedule_group.command("resume")
@click.argument("name")
@pass_app
def schedule_resume(app: App, name: str) -> None:
    """Resume a paused schedule; due times passed while it was paused are not run."""
    from fleet.schedule import next_due

    s = app.store.set_schedule_paused(name, False, str(app.actor))
    due = next_due(s.cron, s.tz, SystemClock().now())
    click.echo(f"schedule {name} resumed; next due {_when(due, s.tz)}")


@click.group("scheduler")
def scheduler_group() -> None:
    """The daemon that starts due schedules' rollouts."""


def _global_args(app: App) -> list[str]:
    """Arguments that make a launched `fleet rollout` use this scheduler's store and settings."""
    s = app.settings
    args = ["--state", str(s.state_dir), "--store", s.store_url]
    if app.config_file:
        args += ["--config", app.config_file]
    if app.flags.get("inventory"):
        args += ["--inventory", str(app.flags["inventory"])]
    return args


@scheduler_group.command("run")
@click.option("--once", is_flag=True, help="One pass, then exit (from cron or a systemd timer).")
@click.option("--wait", is_flag=True, help="With --once: wait for the started rollouts to end.")
@option(
    "--poll",
    type=Duration(positive=True),
    default="30s",
    show_default=True,
    help="Time between passes",
)
@option(
    "--grace",
    type=Duration(),
    default="5m",
    show_default=True,
    help="Later than this, a due is missed",
)
@pass_app
def scheduler_run(app: App, once: bool, wait: bool, poll: float, grace: float) -> None:
    """Start due rollouts, each as its own `fleet rollout` process (logs under
    <state>/scheduler/). One scheduler leads (a lease in the store); others stand by and take
    over when it stops. `fleet halt` stops it from starting anything.

    \b
    Example:
      fleet scheduler run --poll 30s
    """
    from fleet.schedule import Scheduler, SubprocessLauncher

    clock = SystemClock()
    launcher = SubprocessLauncher(
        app.store, log_dir=app.settings.state_dir / "scheduler", global_args=_global_args(app)
    )

    def log(text: str) -> None:
        click.echo(f"{utc_iso(clock.now())} {text}", err=True)

    scheduler = Scheduler(
        app.store,
        launcher,
        clock=clock,
        grace=timedelta(seconds=grace),
        lease_ttl=max(60.0, 3 * poll),
        log=log,
    )
    if once:
        try:
            results = scheduler.tick()
        finally:
            scheduler.close()
        if wait:
            launcher.wait()
        failed = [r for r in results if r.action == "failed"]
        raise SystemExit(1 if failed else 0)
    _run_until_signalled(scheduler, poll)


def _run_until_signalled(scheduler: Scheduler, poll: float) -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        scheduler.run(poll=poll, stop=stop)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
