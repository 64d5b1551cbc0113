"""``fleet run``: ad-hoc commands through the same engine as a rollout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fleet.cli.app import App, pass_app
from fleet.cli.params import Count, option
from fleet.cli.wiring import execute, finish, heartbeat
from fleet.errors import UsageError

if TYPE_CHECKING:
    from fleet.engine.rollout import Rollout


@click.command("run")
@click.argument("commands", nargs=-1)
@click.option(
    "--commands-file", type=click.Path(exists=True, dir_okay=False), help="One command a line."
)
@click.option("--limit", "-l", help="Hosts (see `fleet rollout --help`).")
@option(
    "--forks",
    "-f",
    "concurrency",
    type=Count(1),
    default=None,
    help="Hosts at once (default: rollout.concurrency)",
)
@click.option("--batches", default="1,100%", show_default=True, help="Batch sizes.")
@option("--max-failures", type=Count(0), default=None, help="Halt when more hosts failed")
@click.option(
    "--include-quarantined",
    is_flag=True,
    help="Also run on quarantined hosts, to diagnose them; they stay quarantined.",
)
@pass_app
def run_cmd(
    app: App,
    commands: tuple[str, ...],
    commands_file: str | None,
    limit: str | None,
    concurrency: int | None,
    batches: str,
    max_failures: int | None,
    include_quarantined: bool,
) -> None:
    """Run ad-hoc commands on hosts, in order, through the same engine as a rollout
    (journal, leases, batches), printing each output line prefixed by the host.

    Quarantined hosts are skipped, as by a rollout, unless --include-quarantined (for a look
    at why they failed: they stay quarantined until `fleet quarantine clear`).

    \b
    Example:
      fleet run -l 'web-*' 'uptime' 'df -h /'
      fleet run -l srv-014 --include-quarantined 'dmesg | tail -20'
    """
    from fleet.engine.rollout import RolloutOptions
    from fleet.engine.runs import create_run
    from fleet.plan import adhoc_plan
    from fleet.report import OutputPrinter

    lines = list(commands)
    if commands_file:
        lines += [x for x in Path(commands_file).read_text().splitlines() if x.strip()]
    if not lines:
        raise UsageError("no command given", hint="fleet run 'uptime' or --commands-file FILE")
    plan = adhoc_plan(lines)
    hosts = app.hosts(limit)
    options = RolloutOptions(
        batches=batches,
        concurrency=app.settings.get("rollout.concurrency") if concurrency is None else concurrency,
        max_failures=max_failures,
    )
    run = create_run(app.store, plan, hosts, options.to_dict())
    shown = [OutputPrinter(), heartbeat(app)]

    def configure(rollout: Rollout) -> None:
        rollout.include_quarantined = include_quarantined

    result = execute(app, run, plan, hosts, options, "plain", extra=shown, configure=configure)
    finish(result, app)
