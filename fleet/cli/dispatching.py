"""Wiring of a rollout's dispatch to Celery workers: the broker of the settings, whether a run
uses workers, and the host runner :func:`fleet.cli.wiring.execute` hands the rollout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fleet.cli.app import App

if TYPE_CHECKING:
    from fleet.engine.journal import Journal
    from fleet.engine.pipeline import Services
    from fleet.engine.rollout import HostRunner
    from fleet.inventory import Host
    from fleet.store.base import RunRecord
    from fleet.workers import Broker


def open_broker(app: App) -> Broker:
    """The broker of this process's settings (closed with the app)."""
    from fleet.workers import Broker, check_route

    s = app.settings
    check_route(s.get("workers.route_by"))
    broker = Broker(s.get("workers.broker"), s.get("workers.visibility_timeout"))
    app._closers.append(broker.close)
    return broker


def share_pacing(app: App) -> None:
    """Pace this process's OVH calls through the rate limit its workers share (kept in the
    broker: :mod:`fleet.workers.pacer`), so that together they stay under it."""
    app.share_pacing(open_broker(app).pacer)


def uses_workers(app: App, run: RunRecord) -> bool:
    """Whether ``run`` dispatches to workers: as it was started, else the setting."""
    kept = run.options.get("workers")
    return bool(app.settings.get("rollout.workers") if kept is None else kept)


def check_workers(app: App, hosts: list[Host]) -> None:
    """Before a run exists: the broker answers; say which hosts' queues no worker consumes
    (their hosts wait in the queue until one starts)."""
    from fleet.workers import queue_for

    s = app.settings
    broker = open_broker(app)
    broker.check()
    route_by, default = s.get("workers.route_by"), s.get("workers.default_queue")
    wanted: dict[str, int] = {}
    for host in hosts:
        queue = queue_for(host, route_by, default)
        wanted[queue] = wanted.get(queue, 0) + 1
    served = broker.consumers()
    for queue, count in sorted(wanted.items()):
        if queue not in served:
            click.echo(
                f"warning: no worker consumes queue {queue} ({count} host(s)); they wait "
                f"until `fleet worker --queues {queue}` starts",
                err=True,
            )


def host_runner(app: App, run: RunRecord, svc: Services, journal: Journal) -> HostRunner | None:
    """The rollout's host runner: None (in this process) unless the run uses workers."""
    if not uses_workers(app, run):
        return None
    from fleet.workers import queue_for

    s = app.settings
    route_by, default = s.get("workers.route_by"), s.get("workers.default_queue")
    assert journal.fence is not None, "the run is owned before it is dispatched"
    broker = open_broker(app)
    dispatch = broker.dispatch(
        journal,
        app.store,
        run_token=journal.fence.run_token,
        stop=svc.stop,
        route=lambda host: queue_for(host, route_by, default),
    )
    app.share_pacing(broker.pacer)  # a resume, a scheduled run: not shared yet
    svc.remote_usage = dispatch.ovh_usage  # the workers' calls and waits, in the live view
    app._closers.append(dispatch.close)
    return dispatch
