"""``--confirm``: a plan with destructive steps runs only once the operator has said on how
many hosts (or on which) they will run, so that a too-wide ``--limit`` cannot wipe a fleet.

``--confirm 14`` (the count) or ``--confirm srv-001,srv-002`` (exactly those hosts) must
match what ``fleet plan PLAN --summary`` lists under "destructive steps". Without it, an
operator at a terminal is asked to type the count; anywhere else the rollout is refused
before any run exists. Reinstall stages keep their own ``--approve-reinstall``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from fleet.errors import UsageError
from fleet.escape import printable

if TYPE_CHECKING:
    from fleet.plan import HostPlan, Plan

#: Run option recording the hosts the operator confirmed destructive steps on.
CONFIRMED_OPTION = "confirmed_destructive"


def destructive_hosts(rendered: Sequence[HostPlan]) -> tuple[list[str], list[str]]:
    """The hosts with destructive steps, and those steps' keys."""
    hosts = sorted(hp.host for hp in rendered if hp.destructive_steps)
    steps = sorted({k for hp in rendered for k in hp.destructive_steps})
    return hosts, steps


def confirm_destructive(
    plan: Plan, rendered: Sequence[HostPlan], confirm: str | None
) -> dict[str, list[str]]:
    """The run options recording the confirmation (``{}`` when nothing is destructive); raises
    a usage error when ``confirm`` does not match the hosts destructive steps would run on."""
    hosts, steps = destructive_hosts(rendered)
    if not hosts:
        return {}
    what = (
        f"plan {plan.name} runs destructive steps ({', '.join(steps[:4])}"
        f"{', ...' if len(steps) > 4 else ''}) on {len(hosts)} host(s)"
    )
    if confirm is None:
        confirm = _ask(what, len(hosts))
    given = confirm.strip()
    if given.isascii() and given.isdigit():
        if int(given) != len(hosts):
            raise _refused(f"{what}, not {given}", hosts)
        return {CONFIRMED_OPTION: hosts}
    named = {n.strip() for n in given.split(",") if n.strip()}
    if named != set(hosts):
        missing, extra = sorted(set(hosts) - named), sorted(named - set(hosts))
        parts = [f"not named: {', '.join(missing[:8])}"] if missing else []
        parts += [f"no destructive step on: {', '.join(extra[:8])}"] if extra else []
        raise _refused(f"{what}; --confirm does not name them ({'; '.join(parts)})", hosts)
    return {CONFIRMED_OPTION: hosts}


def _ask(what: str, count: int) -> str:
    """At a terminal, ask for the count; anywhere else, refuse."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            f"{printable(what)}: confirm with --confirm {count} (or the host names); "
            "nothing was changed",
            hint="`fleet plan PLAN --summary` lists the destructive steps and their hosts",
        )
    answer: str = click.prompt(
        f"{printable(what)}.\nType the number of hosts ({count}) to go on",
        default="",
        show_default=False,
        err=True,
    )
    if answer.strip() != str(count):
        raise UsageError("not confirmed; nothing was changed")
    return answer


def _refused(text: str, hosts: list[str]) -> UsageError:
    shown = ",".join(hosts[:20]) + (",..." if len(hosts) > 20 else "")
    return UsageError(
        f"{printable(text)}; nothing was changed",
        hint=f"--confirm {len(hosts)}, or --confirm {printable(shown)}",
    )
