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
    from fleet.engine.journal import Observer
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


def observers(output: str, run: RunRecord | None = None) -> list[Observer]:
    """JSON lines with ``--output json``; the live view when stdout is a terminal; else one
    plain timestamped line per transition (logs, CI, ``| tee``)."""
    from fleet.report import JsonPrinter, PlainPrinter

    if output == "json":
        return [JsonPrinter()]
    if run is not None and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from fleet.live import LiveView

        return [LiveView(run)]
    return [PlainPrinter()]


def live_output(output: str, run: RunRecord, show: bool) -> list[Observer] | None:
    """The observers of a run whose steps' output is printed as they end (``--show-output``):
    plain lines (or JSON events) and the output, prefixed by host; None: the usual ones."""
    if not show:
        return None
    from fleet.report import JsonPrinter, OutputPrinter, PlainPrinter

    printer: Observer = JsonPrinter() if output == "json" else PlainPrinter()
    return [printer, OutputPrinter(sys.stderr if output == "json" else None)]


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
    from fleet.engine.journal import Journal
    from fleet.engine.rollout import Resumption, Rollout, read_resumption
    from fleet.store.base import Fence

    lease = lease or claim(app, run)
    run = app.store.get_run(run.id)  # with its live owner: this process
    svc = services(app)
    assert svc.leases is not None
    svc.leases.hold_run(
        lease, lambda why: svc.stop.request(f"this process lost run {run.id}: {why}", hard=True)
    )
    journal = Journal(app.store, run.id, (extra if extra is not None else observers(output, run)))
    journal.fence = Fence(run.id, lease.token)
    if inputs_change:
        journal.emit("run.inputs", excerpt=inputs_change, data={"accepted_by": str(run.owner)})
    resumption = (
        read_resumption(app.store.events(run.id)) if resuming else Resumption(frozenset(), {}, {})
    )
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
    )
    if configure is not None:
        configure(rollout)
    with interrupts(svc):
        return rollout.execute()


def audit_approval(app: App, run_id: str, approved: dict[str, Any]) -> None:
    """Put the approvals a run starts with in the audit trail, with who gave them: a reinstall's
    (the hosts whose system disks the run may wipe) and a destructive plan's preview."""
    from fleet.stages.reinstall.approval import APPROVAL_OPTION

    hosts = approved.get(APPROVAL_OPTION)
    if hosts:
        app.store.audit("reinstall.approve", run_id=run_id, detail={"hosts": hosts})
    preview = approved.get("approved_preview")
    if preview:
        detail = {"id": preview["id"], "hosts": sorted(preview["hosts"])}
        app.store.audit("preview.approve", run_id=run_id, detail=detail)


def finish(result: RolloutResult) -> NoReturn:
    if result.state == "lost":
        click.echo(
            f"run {result.run_id}: lost by this process, which stopped and touched nothing "
            f"more ({result.reason})",
            err=True,
        )
        sys.exit(result.exit_code)
    ok, failed = result.count("ok"), result.count("failed")
    skipped, stopped = result.count("skipped"), result.count("stopped")
    line = f"run {result.run_id}: {result.state}; ok {ok}, failed {failed}, skipped {skipped}, not finished {stopped}"
    if result.reason:
        line += f" ({result.reason})"
    click.echo(line, err=True)
    for r in result.results.values():
        if r.outcome in ("failed", "skipped") and r.message:
            click.echo(
                f"  {r.host}: {r.outcome} ({r.failure}): {r.message.splitlines()[-1][:300]}",
                err=True,
            )
    if result.state in ("halted", "failed"):
        click.echo(
            f"hint: fix the cause, then `fleet resume {result.run_id}` (or `fleet abort {result.run_id}`)",
            err=True,
        )
    sys.exit(result.exit_code)
