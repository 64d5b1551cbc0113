"""Wiring shared by the commands that run a rollout (rollout, run, resume, reinstall): the
execution settings, the process-wide services, the observers, Ctrl-C handling, and the closing
summary with its exit code. This is where concrete objects are built and handed to the engine."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from fleet.cli.app import App

if TYPE_CHECKING:
    from fleet.engine.journal import Journal, Observer
    from fleet.engine.pipeline import Services
    from fleet.engine.rollout import Rollout, RolloutOptions, RolloutResult
    from fleet.inventory import Host
    from fleet.plan import Plan
    from fleet.stages.context import ExecSettings
    from fleet.store.base import RunLease, RunRecord
    from fleet.transport.ssh import SshConnector


def exec_settings(app: App, wait_for_leases: float = 0.0) -> ExecSettings:
    from fleet.stages.context import ExecSettings

    s = app.settings
    key_path = s.path("rescue.ssh_public_key")
    rescue_key = key_path.read_text().strip() if key_path else None
    return ExecSettings(
        lease_ttl=s.get("rollout.lease_ttl"),
        reboot_timeout=s.get("reboot.timeout"),
        ssh_poll=s.get("reboot.ssh_poll"),
        task_poll=s.get("reboot.task_poll"),
        infra_retries=s.get("rollout.infra_retries"),
        infra_retry_delay=s.get("rollout.infra_retry_delay"),
        rescue_public_key=rescue_key,
        wait_for_leases=wait_for_leases,
        key_file=s.get("ssh.key_file"),
    )


def connector(app: App) -> SshConnector:
    """The SSH connector of this process, from the settings (closed with the app)."""
    from fleet.transport.ssh import SshConnector

    s = app.settings
    made = SshConnector(
        host_keys=app.store,
        default_key_file=s.get("ssh.key_file"),
        key_passphrase=s.get("ssh.key_passphrase"),
        agent=s.get("ssh.agent"),
        ssh_config=s.get("ssh.config_file"),
        connect_timeout=s.get("ssh.connect_timeout"),
        trust_on_first_use=s.get("ssh.trust_on_first_use"),
    )
    app._closers.append(made.close)
    return made


def services(app: App) -> Services:
    from fleet.engine.leases import LeaseKeeper
    from fleet.engine.pipeline import Services

    keeper = LeaseKeeper(app.store, app.settings.get("rollout.lease_ttl"))
    app._closers.append(keeper.close)
    return Services(app.store, connector(app), provider_factory=app.provider, leases=keeper)


def claim(app: App, run: RunRecord) -> RunLease:
    """Make this process the run's one live owner (see :mod:`fleet.engine.owners`)."""
    from fleet.clock import SystemClock
    from fleet.engine.owners import claim_run

    return claim_run(app.store, run, app.settings.get("rollout.lease_ttl"), SystemClock().now())


def heartbeat(app: App) -> Observer:
    """Plain output's heartbeat: a line for every wait left unmentioned for
    ``output.heartbeat`` seconds, and the OVH rate limit when it holds calls back."""
    from fleet.heartbeat import Heartbeat

    return Heartbeat(app.settings.get("output.heartbeat"), extra=app.pacing)


def observers(app: App, output: str, run: RunRecord | None = None) -> list[Observer]:
    """JSON lines with ``--output json``; the live view with ``live``, or with ``auto`` when
    stdout is a terminal; else one plain timestamped line per transition (logs, CI, ``| tee``)
    and heartbeats."""
    from fleet.report import JsonPrinter, PlainPrinter

    if output == "json":
        return [JsonPrinter()]
    terminal = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    if run is not None and (output == "live" or (output == "auto" and terminal)):
        from rich.console import Console

        from fleet.escape import raw_stream
        from fleet.live import LiveView

        return [LiveView(run, Console(file=raw_stream(sys.stdout)))]
    return [PlainPrinter(), heartbeat(app)]


def live_output(app: App, output: str, run: RunRecord, show: bool) -> list[Observer] | None:
    """The observers of a run whose steps' output is printed as they end (``--show-output``):
    plain lines and heartbeats (or JSON events) and the output, prefixed by host; None: the
    usual ones."""
    if not show:
        return None
    from fleet.report import JsonPrinter, OutputPrinter, PlainPrinter

    if output == "json":
        return [JsonPrinter(), OutputPrinter(sys.stderr)]
    return [PlainPrinter(), heartbeat(app), OutputPrinter()]


@contextmanager
def interrupts(svc: Services) -> Iterator[None]:
    """First Ctrl-C: start nothing new, let in-flight steps finish. Second: cut them now."""
    count = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count == 1:
            click.echo(
                "interrupt: no new host will start; in-flight steps finish (Ctrl-C again to cut them)",
                err=True,
            )
            svc.stop.request("interrupted by the operator")
        else:
            click.echo("second interrupt: cutting in-flight steps", err=True)
            svc.stop.request("aborted by the operator (second interrupt)", hard=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(
    app: App,
    run: RunRecord,
    plan: Plan,
    hosts: list[Host],
    options: RolloutOptions,
    output: str,
    extra: list[Observer] | None = None,
    *,
    resuming: bool = False,
    wait_for_leases: float = 0.0,
    configure: Callable[[Rollout], None] | None = None,
    lease: RunLease | None = None,
    inputs_change: str | None = None,
) -> RolloutResult:
    """Own the run (``lease``, or claim it now), build the rollout and run it; ``configure``
    may set its hooks first (maintenance windows: :func:`fleet.schedule.window_hooks`)."""
    from fleet.cli.dispatching import host_runner
    from fleet.engine.journal import Journal
    from fleet.engine.rollout import Rollout, read_resumption
    from fleet.store.base import Fence

    lease = lease or claim(app, run)
    run = app.store.get_run(run.id)  # with its live owner: this process
    svc = services(app)
    shown = extra if extra is not None else observers(app, output, run)
    assert svc.leases is not None
    svc.leases.hold_run(
        lease, lambda why: svc.stop.request(f"this process lost run {run.id}: {why}", hard=True)
    )
    for watcher in shown:  # the live view shows the OVH calls and rate limit waits as they grow
        if hasattr(watcher, "ovh_usage"):
            watcher.ovh_usage = svc.ovh_usage
    journal = Journal(app.store, run.id, shown)
    journal.fence = Fence(run.id, lease.token)
    if inputs_change:
        journal.emit("run.inputs", excerpt=inputs_change, data={"accepted_by": str(run.owner)})
    resumption = read_resumption(app.store.events(run.id)) if resuming else None
    rollout = Rollout(
        run,
        plan,
        hosts,
        options,
        svc,
        journal,
        exec_settings(app, wait_for_leases),
        resumption=resumption,
        retry_quarantined=resuming,
        runner=host_runner(app, run, svc, journal),
    )
    if configure is not None:
        configure(rollout)
    with interrupts(svc), ssh_logs_into(journal, app.debug):
        return rollout.execute()


def audit_approval(app: App, run_id: str, approved: dict[str, Any]) -> None:
    """Put the approvals a run starts with in the audit trail, with who gave them: a reinstall's
    (the hosts whose system disks the run may wipe), a destructive plan's --confirm and preview."""
    from fleet.cli.confirm import CONFIRMED_OPTION
    from fleet.stages.reinstall.approval import APPROVAL_OPTION

    hosts = approved.get(APPROVAL_OPTION)
    if hosts:
        app.store.audit("reinstall.approve", run_id=run_id, detail={"hosts": hosts})
    confirmed = approved.get(CONFIRMED_OPTION)
    if confirmed:
        app.store.audit("destructive.confirm", run_id=run_id, detail={"hosts": confirmed})
    preview = approved.get("approved_preview")
    if preview:
        detail = {"id": preview["id"], "hosts": sorted(preview["hosts"])}
        app.store.audit("preview.approve", run_id=run_id, detail=detail)


@contextmanager
def ssh_logs_into(journal: Journal, debug: bool) -> Iterator[None]:
    """paramiko's own warnings become ``host.ssh`` journal events, one line each (with
    ``--debug`` they stay on the terminal, tracebacks and all)."""
    if debug:
        yield
        return
    from fleet.transport.logs import route_paramiko_logs

    def note(host: str | None, line: str) -> None:
        journal.emit("host.ssh", host=host, excerpt=line)

    undo = route_paramiko_logs(note)
    try:
        yield
    finally:
        undo()


def finish(result: RolloutResult, app: App | None = None) -> NoReturn:
    """The closing summary (counts over the whole run, every session of it), the hosts that
    did not end well, the hint that fits, and the exit code."""
    from fleet.escape import printable

    if result.state == "lost":
        click.echo(
            f"run {result.run_id}: lost by this process, which stopped and touched nothing "
            f"more ({result.reason})",
            err=True,
        )
        sys.exit(result.exit_code)
    line = f"run {result.run_id}: {result.state}; {_counts(result, app)}"
    if result.reason:
        line += f" ({result.reason})"
    click.echo(printable(line), err=True)
    for r in result.results.values():
        if r.outcome in ("failed", "skipped") and r.message:
            last = r.message.splitlines()[-1][:300]
            click.echo(printable(f"  {r.host}: {r.outcome} ({r.failure}): {last}"), err=True)
    for hint in hints(result):
        click.echo(printable(f"hint: {hint}"), err=True)
    sys.exit(result.exit_code)


def _counts(result: RolloutResult, app: App | None) -> str:
    """``ok 14, failed 0, skipped 0, not finished 0`` over the whole run (a resume counts the
    hosts earlier sessions finished too), then this session's own share after a resume."""
    ok, failed = result.count("ok"), result.count("failed")
    skipped, stopped = result.count("skipped"), result.count("stopped")
    here = f"ok {ok}, failed {failed}, skipped {skipped}, not finished {stopped}"
    if app is None or not result.resumed:  # one session: its counts are the run's
        return here
    from fleet.reports.model import RunProgress

    run = app.store.get_run(result.run_id)
    progress = RunProgress.replay(run.hosts, app.store.events(result.run_id))
    if progress.sessions <= 1:
        return here
    n = progress.counts()
    whole = (
        f"ok {n['done']}, failed {n['failed']}, skipped {n['skipped'] + n['quarantined']}, "
        f"not finished {n['stopped'] + n['waiting'] + n['leased'] + n['running']}"
    )
    return f"{whole} over {progress.sessions} sessions (this one: {here})"


def hints(result: RolloutResult) -> list[str]:
    """What to do next, from how the run ended."""
    run = result.run_id
    failures = {r.failure for r in result.results.values() if r.outcome in ("failed", "skipped")}
    out = []
    if "hostkey" in failures:
        out.append(
            "a host presented an unexpected SSH key: find out why before anything else; "
            "`fleet hostkeys list HOST` shows the pinned keys, `fleet hostkeys forget` drops one "
            "(docs: howto/host-key-change.md)"
        )
    if "quarantine" in failures:
        out.append(
            "quarantined hosts were skipped: `fleet quarantine list` says why; "
            "`fleet quarantine clear HOST` once fixed"
        )
    if "lease" in failures:
        out.append(
            "hosts held by another run were skipped: `fleet leases list` names the holder; "
            "--wait-for-leases waits for it"
        )
    if (result.reason or "").startswith("global halt"):
        out.append(f"a global halt is on: `fleet unhalt` lifts it, then `fleet resume {run}`")
    elif result.state in ("halted", "failed"):
        out.append(f"fix the cause, then `fleet resume {run}` (or `fleet abort {run}`)")
    return out
