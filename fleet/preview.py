"""What the file steps of a plan would change on each host: ``fleet plan --diff``.

For every ``template`` and ``put`` step of a host's plan, the files are made locally (templates
rendered in the sandbox with the host's vars) and compared with what the host has, through
read-only commands only (``sha256sum``, ``stat``, ``cat``): a template that differs shows as a
unified diff, a put as the list of files that would be replaced. A template that needs facts
gathered by an earlier stage cannot be rendered before the rollout and says so.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleet.errors import FleetError, PlanError
from fleet.inventory import Host
from fleet.plan import HostPlan, Plan, RenderedStep
from fleet.stages import files
from fleet.transport.base import Transport

_TIMEOUT = 60.0


@dataclass(frozen=True)
class _View:
    """The little of a stage context that making a step's files needs."""

    host: Host
    vars: Mapping[str, Any]
    facts: Mapping[str, Any] = field(default_factory=dict)


def host_diff(plan: Plan, host: Host, rendered: HostPlan, transport: Transport) -> list[str]:
    """Lines describing what the file steps of ``rendered`` would change on ``host``."""
    lines: list[str] = []
    for stage in rendered.stages:
        for step in stage.steps:
            if step.file is not None:
                lines += _step_diff(plan, host, step, transport)
    return lines


def _step_diff(plan: Plan, host: Host, step: RenderedStep, transport: Transport) -> list[str]:
    op = step.file
    assert op is not None
    if op.dest.startswith("~/"):
        home = transport.run('printf %s "$HOME"', timeout=_TIMEOUT).stdout.rstrip("/")
        op = replace(op, dest=home + op.dest[1:])
    try:
        wanted = files.wanted_files(_View(host, plan.vars), op)  # type: ignore[arg-type]
    except PlanError:
        if op.kind == "template" and "facts" in Path(op.source).read_text(errors="replace"):
            return [f"  {step.key}: rendered at run time (needs facts of earlier stages)"]
        raise
    listing = transport.run(files.state_command(wanted), timeout=_TIMEOUT)
    if not listing.ok:
        return [f"  {step.key}: cannot read the host's files: {listing.excerpt(200)}"]
    changed = files.differing(op, wanted, listing.stdout)
    if not changed:
        return [f"  {step.key}: unchanged"]
    out = [f"  {step.key}: {len(changed)} of {len(wanted)} file(s) would change"]
    for item in changed:
        if op.kind != "template":
            out.append(f"    {item.dest}")
            continue
        current = transport.run(f"cat -- {shlex.quote(item.dest)}", timeout=_TIMEOUT)
        before = current.stdout.splitlines(keepends=True) if current.ok else []
        after = item.content.decode(errors="replace").splitlines(keepends=True)
        diff = difflib.unified_diff(before, after, f"{item.dest} (host)", f"{item.dest} (plan)")
        out += ["    " + line.rstrip("\n") for line in diff]
    return out


def safe_diff(plan: Plan, host: Host, rendered: HostPlan, transport: Transport) -> list[str]:
    """:func:`host_diff`, with a failure to reach or read the host as a line of its own."""
    try:
        return host_diff(plan, host, rendered, transport)
    except FleetError as exc:
        return [f"  cannot compare: {exc.message}"]
    finally:
        transport.close()
