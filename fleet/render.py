"""Printing a plan for ``fleet plan``: per host what would run, batches, leases, destructive steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fleet.inventory import Host
from fleet.plan import HostPlan, Plan
from fleet.reports.records import decision_lines
from fleet.stages.reinstall.approval import describe_stage

if TYPE_CHECKING:
    from fleet.engine.preview import HostPreview
    from fleet.store.base import Preview


def print_plan(plan: Plan, rendered: list[HostPlan], batches: list[list[Host]]) -> None:
    click.echo(f"plan {plan.name} ({plan.source}, hash {plan.hash}) on {len(rendered)} hosts")
    for hp in rendered:
        click.echo(f"\nhost {hp.host}")
        for stage in hp.stages:
            if stage.kind == "reinstall":  # a provider stage that wipes the system disks
                click.echo(f"  stage {stage.name} [{stage.kind}]  DESTRUCTIVE")
                click.echo(f"      {describe_stage(stage.params)}")
                continue
            click.echo(f"  stage {stage.name} [{stage.kind}]")
            for key in ("check", "call", "verify"):
                ref = getattr(stage, key)
                if ref:
                    digest = plan.code.get(ref)
                    click.echo(f"    {key}: {ref}" + (f" (sha256 {digest[:12]})" if digest else ""))
            for step in stage.steps:
                mark = "  DESTRUCTIVE" if step.destructive else ""
                click.echo(f"    step {step.name}{mark}")
                if step.check:
                    click.echo(f"      check:  {step.check}")
                click.echo(f"      apply:  {step.apply}")
                if step.verify:
                    click.echo(f"      verify: {step.verify}")
        for skipped in hp.skipped:
            click.echo(f"  skipped (when): {skipped}")
    click.echo("\nbatches:")
    for i, batch in enumerate(batches, start=1):
        names = ", ".join(h.name for h in batch[:8]) + (" ..." if len(batch) > 8 else "")
        click.echo(f"  {i}: {len(batch)} hosts: {names}")
    destructive = sorted({k for hp in rendered for k in hp.destructive_steps})
    destructive += sorted(
        {f"{st.name}/reinstall" for hp in rendered for st in hp.stages if st.kind == "reinstall"}
    )
    click.echo(f"\nleases: one per host ({len(rendered)}), taken before the host's first step")
    click.echo("destructive steps: " + (", ".join(destructive) if destructive else "none"))
    click.echo("nothing was changed: this is a dry run")


def print_preview(plan: Plan, results: list[HostPreview], preview: Preview) -> None:
    """``fleet plan --probe``: per host the disks taken and not taken and why."""
    click.echo(
        f"preview {preview.id} of {plan.name} (hash {plan.hash}) on {len(results)} hosts: "
        "read-only, nothing was changed"
    )
    for result in results:
        if result.error or result.refused:
            click.echo(f"\nhost {result.host}: {'refused' if result.refused else 'failed'}")
            click.echo(f"  {result.refused or result.error}")
            continue
        click.echo(f"\nhost {result.host}: decision {result.digest}")
        for line in decision_lines(dict(result.facts.get("decisions") or {})):
            click.echo(f"  {line}")
    click.echo(f"\nroll out exactly this with: --approve {preview.id}")
