"""Showing a plan for ``fleet plan``: per host what would run (``--host`` for a few), or a
summary that fits a screen (``--summary``): hosts that run the same steps grouped, the
destructive steps and how many hosts each touches, the batches by datacenter.

Every value that comes from a plan or an inventory is shown escaped (:mod:`fleet.escape`).
The functions return lines; the command prints them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from fleet.escape import printable
from fleet.inventory import Host
from fleet.plan import HostPlan, Plan, RenderedStage, RenderedStep
from fleet.reports.records import decision_lines
from fleet.stages.reinstall.approval import describe_stage

if TYPE_CHECKING:
    from fleet.engine.preview import HostPreview
    from fleet.store.base import Preview

#: Host names listed in one line before "... (+N)".
SHOWN_NAMES = 8


@dataclass(frozen=True)
class Defaults:
    """What a plan leaves to the settings: the wait of a provider stage (``reboot.timeout``)
    and the retries of an infrastructure failure (``rollout.infra_retries``)."""

    stage_timeout: float = 900.0
    infra_retries: int = 2


def format_seconds(seconds: float) -> str:
    """``45s``, ``10m``, ``1h30m``, ``0.5s``: a limit as the plan would write it."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    rest, out = round(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        out += f"{count}{unit}" if count else ""
    return out or "0s"


def names(items: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    text = ", ".join(printable(n) for n in items[:shown])
    return text + (f" ... (+{len(items) - shown})" if len(items) > shown else "")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def header(plan: Plan, hosts: int) -> str:
    return printable(f"plan {plan.name} ({plan.source}, hash {plan.hash}) on {hosts} hosts")


# -- per host ------------------------------------------------------------------------------------


def step_limits(step: RenderedStep) -> str:
    """``timeout 10m, 2 retries (backoff from 5s)``: what bounds a step."""
    text = f"timeout {format_seconds(step.timeout)}"
    if step.retries:
        text += f", {step.retries} {'retry' if step.retries == 1 else 'retries'}"
        text += f" (backoff from {format_seconds(step.retry_delay)}, with jitter)"
    return text


def command_lines(part: str, command: str | None) -> list[str]:
    """``      apply:  first line``, then the script's other lines aligned under it."""
    if command is None:
        return []
    lines = command.split("\n")  # only newlines: other separators show escaped
    head = f"      {part + ':':<8}"
    return [head + printable(lines[0])] + [" " * len(head) + printable(x) for x in lines[1:]]


def stage_title(stage: RenderedStage, defaults: Defaults) -> str:
    title = f"stage {stage.name} [{stage.kind}]"
    if stage.kind == "reinstall":  # a provider stage that wipes the system disks
        title += "  DESTRUCTIVE"
    if stage.kind not in ("ssh", "python"):
        title += f"  (waits up to {format_seconds(stage.timeout or defaults.stage_timeout)})"
    return printable(title)


def code_lines(stage: RenderedStage, code: Mapping[str, str]) -> list[str]:
    """A python stage's function references (call, check, verify), each with the digest of
    the code it runs when that code is a file of the plan's."""
    out = []
    for key in ("check", "call", "verify"):
        ref = getattr(stage, key)
        if ref:
            digest = code.get(ref)
            out.append(
                printable(f"    {key}: {ref}" + (f" (sha256 {digest[:12]})" if digest else ""))
            )
    return out


def host_lines(hp: HostPlan, defaults: Defaults, code: Mapping[str, str]) -> list[str]:
    out = [printable(f"host {hp.host}")]
    for stage in hp.stages:
        out.append(f"  {stage_title(stage, defaults)}")
        if stage.kind == "reinstall":
            out.append(f"      {printable(describe_stage(stage.params))}")
        out += code_lines(stage, code)
        for step in stage.steps:
            mark = "  DESTRUCTIVE" if step.destructive else ""
            out.append(f"    step {printable(step.name)}{mark}  ({step_limits(step)})")
            for part in ("check", "apply", "verify"):
                out += command_lines(part, getattr(step, part))
    out += [f"  skipped (when): {printable(s)}" for s in hp.skipped]
    return out


# -- shapes: hosts that run the same steps ------------------------------------------------------


def shape_of(hp: HostPlan) -> tuple[object, ...]:
    """What makes two hosts' plans the same but for host-specific values: stages, kinds,
    steps, their limits and destructive marks, and what ``when`` skipped."""
    stages = tuple(
        (
            st.name,
            st.kind,
            st.timeout,
            tuple((s.name, s.destructive, s.timeout, s.retries, s.retry_delay) for s in st.steps),
        )
        for st in hp.stages
    )
    return (stages, hp.skipped)


def stage_brief(stage: RenderedStage) -> str:
    if stage.kind == "reinstall":
        return f"{stage.name} [reinstall, DESTRUCTIVE]"
    if not stage.steps:
        return f"{stage.name} [{stage.kind}]"
    destructive = sum(1 for s in stage.steps if s.destructive)
    text = f"{stage.name}: {plural(len(stage.steps), 'step')}"
    return text + (f" ({destructive} destructive)" if destructive else "")


def shape_lines(rendered: Sequence[HostPlan]) -> list[str]:
    groups: dict[tuple[object, ...], list[HostPlan]] = {}
    for hp in rendered:
        groups.setdefault(shape_of(hp), []).append(hp)
    out = [f"hosts by the steps they run ({plural(len(groups), 'group')}):"]
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0].host))
    for i, group in enumerate(ordered, start=1):
        first = group[0]
        out.append(f"  {i}. {plural(len(group), 'host')}: {names([h.host for h in group])}")
        out.append("     " + printable(" > ".join(stage_brief(s) for s in first.stages)))
        if first.skipped:
            out.append(f"     skipped (when): {printable(', '.join(first.skipped))}")
    return out


# -- destructive steps, batches ------------------------------------------------------------------


def destructive_by_step(rendered: Iterable[HostPlan]) -> dict[str, list[str]]:
    """Each destructive step (and reinstall stage) -> the hosts it would run on."""
    out: dict[str, list[str]] = {}
    for hp in rendered:
        for key in hp.destructive_steps:
            out.setdefault(key, []).append(hp.host)
        for stage in hp.stages:
            if stage.kind == "reinstall":
                out.setdefault(f"{stage.name}/reinstall", []).append(hp.host)
    return out


def destructive_lines(rendered: Sequence[HostPlan]) -> list[str]:
    found = destructive_by_step(rendered)
    if not found:
        return ["destructive steps: none"]
    touched = {h for hosts in found.values() for h in hosts}
    out = [f"destructive steps, on {plural(len(touched), 'host')}:"]
    confirm: set[str] = set()
    for key, hosts in found.items():
        line = f"  {printable(key)}: {plural(len(hosts), 'host')}: {names(hosts)}"
        if key.endswith("/reinstall"):
            line += " (a rollout needs --approve-reinstall)"
        else:
            confirm.update(hosts)
        out.append(line)
    if confirm:
        out.append(f"  a rollout needs --confirm {len(confirm)} (or the names of those hosts)")
    return out


def batch_lines(batches: Sequence[Sequence[Host]], *, by_datacenter: bool) -> list[str]:
    out = ["batches:"]
    for i, batch in enumerate(batches, start=1):
        if by_datacenter:
            count = Counter(h.datacenter or "-" for h in batch)
            where = ", ".join(f"{printable(dc)} {n}" for dc, n in count.items())
            out.append(f"  {i}: {plural(len(batch), 'host')} ({where})")
        else:
            out.append(f"  {i}: {plural(len(batch), 'host')}: {names([h.name for h in batch])}")
    return out


def footer(hosts: int, defaults: Defaults) -> list[str]:
    return [
        f"infrastructure failures (OVH API, SSH unreachable) are retried "
        f"{plural(defaults.infra_retries, 'time')} (rollout.infra_retries) with backoff",
        f"leases: one per host ({hosts}), taken before the host's first step",
        "nothing was changed: this is a dry run",
    ]


def plan_lines(
    plan: Plan,
    rendered: Sequence[HostPlan],
    batches: Sequence[Sequence[Host]],
    defaults: Defaults,
    *,
    summary: bool = False,
    total: int | None = None,
) -> list[str]:
    """What ``fleet plan`` prints: every host of ``rendered`` in full, or the summary.
    ``total`` is the number of selected hosts when ``rendered`` shows only some (``--host``)."""
    hosts = total if total is not None else len(rendered)
    out = [header(plan, hosts)]
    if summary:
        out += ["", *shape_lines(rendered)]
    else:
        for hp in rendered:
            out += ["", *host_lines(hp, defaults, plan.code)]
    out += ["", *batch_lines(batches, by_datacenter=summary)]
    out += ["", *destructive_lines(rendered), *footer(hosts, defaults)]
    return out


def print_preview(plan: Plan, results: list[HostPreview], preview: Preview) -> None:
    """``fleet plan --probe``: per host the disks taken and not taken and why."""
    click.echo(
        printable(
            f"preview {preview.id} of {plan.name} (hash {plan.hash}) on {len(results)} hosts: "
            "read-only, nothing was changed"
        )
    )
    for result in results:
        if result.error or result.refused:
            click.echo(
                printable(f"\nhost {result.host}: {'refused' if result.refused else 'failed'}")
            )
            click.echo(printable(f"  {result.refused or result.error}"))
            continue
        click.echo(printable(f"\nhost {result.host}: decision {result.digest}"))
        for line in decision_lines(dict(result.facts.get("decisions") or {})):
            click.echo(printable(f"  {line}"))
    click.echo(f"\nroll out exactly this with: --approve {preview.id}")
