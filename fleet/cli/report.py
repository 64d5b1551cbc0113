"""``fleet report``: a run's report as JSON, one self-contained HTML page, or JUnit XML."""

from __future__ import annotations

from pathlib import Path

import click

from fleet.cli.app import App, pass_app
from fleet.errors import UsageError
from fleet.reports import FORMATS


@click.command("report")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="json",
    show_default=True,
    help="json (for tools), html (one self-contained page with a timeline), junit (for CI).",
)
@click.option("--out", "-o", metavar="FILE", help="Write here instead of standard output.")
@pass_app
def report_cmd(app: App, run_id: str, fmt: str, out: str | None) -> None:
    """Report on RUN from its journal: summary, budget, per-host timeline, failures.

    The HTML report is a single file with no external resources: mail it, attach it to a
    ticket. JUnit XML lets CI systems show each host as a test case.

    \b
    Example:
      fleet report r20261125-101500-ab12 --format html --out rollout.html
      fleet report r20261125-101500-ab12 --format junit --out junit.xml
    """
    from fleet.reports import render_report

    run = app.run_record(run_id)
    text = render_report(fmt, run, app.store.events(run_id))
    if out is None:
        click.echo(text, nl=False)
        return
    path = Path(out)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror}") from exc
    click.echo(f"wrote {fmt} report of run {run_id} to {out}", err=True)
