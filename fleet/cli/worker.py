"""``fleet worker``: run the host pipelines of rollouts started with ``--workers``."""

from __future__ import annotations

import os
import socket

import click

from fleet.cli.app import App, pass_app
from fleet.cli.dispatching import open_broker
from fleet.cli.wiring import connector
from fleet.errors import UsageError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@click.command("worker")
@click.option(
    "--queues",
    "-Q",
    required=True,
    metavar="NAMES",
    help="Comma-separated queues to take hosts from: datacenters (gra3,rbx8), or regions, or "
    "label values, as workers.route_by routes them.",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="Hosts run at once (default: the workers.concurrency setting).",
)
@click.option("--name", metavar="NAME", help="Worker name (default: fleet-PID@MACHINE).")
@click.option(
    "--loglevel",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="Celery's own log level (fleet's events go to the journal either way).",
)
@pass_app
def worker_cmd(
    app: App, queues: str, concurrency: int | None, name: str | None, loglevel: str
) -> None:
    """Run the host pipelines of rollouts started with --workers, from the given queues.

    A rollout with --workers (or the rollout.workers setting) stays one process that decides
    batches, the failure budget, halts and windows; each host's pipeline runs here, from the
    queue of the host's datacenter (workers.route_by), against the same store. Start one or
    more workers per network, with the same settings (store, SSH key, OVH credentials).

    The worker, the rollout and the other workers of the same OVH key pace their OVH calls
    through one rate limit kept in the broker (ovh.rate_limit a minute for all of them).

    A worker that dies mid-host loses nothing: the broker delivers its hosts again after
    workers.visibility_timeout, and the worker that takes them reads the journal first, so
    finished steps are skipped and an interrupted one is re-checked, never re-applied blindly.
    Ctrl-C or SIGTERM: take no new host, finish the running ones, then exit.

    \b
    Example:
      fleet worker --queues gra3,rbx8 --concurrency 20
    """
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        raise UsageError("--queues names no queue", hint="e.g. --queues gra3,rbx8")
    s = app.settings
    broker = open_broker(app)
    broker.check()
    app.share_pacing(broker.pacer)  # one OVH rate limit for the rollout and all its workers
    label = name or f"fleet-{os.getpid()}@{socket.gethostname()}"
    click.echo(
        f"worker {label}: queues {', '.join(names)}; broker {broker.shown}; store {s.store_url}",
        err=True,
    )
    code = broker.serve(
        app.store,
        connector(app),
        name=label,
        queues=names,
        concurrency=concurrency or s.get("workers.concurrency"),
        provider_factory=app.provider,
        key_file=s.get("ssh.key_file"),
        loglevel=loglevel.upper(),
    )
    raise SystemExit(code)
