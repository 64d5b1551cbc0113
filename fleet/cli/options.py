"""Flags and values shared by the commands that build or run a plan: plan loading with
``--var``, the rollout flags. Each refuses bad input with a one-line usage error; numbers and
durations are checked by their click types (:mod:`fleet.cli.params`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fleet.cli.params import Count, Duration, Ratio, option
from fleet.errors import UsageError

if TYPE_CHECKING:
    from fleet.plan import Plan


def load_plan(ref: str, variables: tuple[str, ...] = ()) -> Plan:
    """A plan file path, or ``builtin:NAME`` for the plans shipped in fleet.plans."""
    from fleet.plan import load_plan_file
    from fleet.plans import builtin_plan

    params = parse_vars(variables)
    if ref.startswith("builtin:") or not ref.endswith((".yaml", ".yml")):
        return builtin_plan(ref.removeprefix("builtin:"), params)
    path = Path(ref)
    if not path.is_file():
        raise UsageError(f"plan file {ref} does not exist")
    plan = load_plan_file(path)
    if params:
        plan = plan.model_copy(update={"vars": {**plan.vars, **params}})
    return plan


def parse_vars(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def rollout_options(default_concurrency: int, **kw: Any) -> Any:
    """The rollout's options from flags already checked by their types; ``concurrency`` None
    (not given) is ``default_concurrency`` (the ``rollout.concurrency`` setting), never 0."""
    from fleet.engine.rollout import RolloutOptions

    if kw.get("concurrency") is None:
        kw["concurrency"] = default_concurrency
    if kw["max_failures"] is not None and kw["max_ratio"] is not None:
        raise UsageError("give --max-failures or --max-failure-ratio, not both")
    if kw["max_failures"] is None and kw["max_ratio"] is None:
        kw["max_failures"] = 0
    return RolloutOptions(**kw)


#: ``--output``: how a rollout shows its progress.
OUTPUTS = ("auto", "live", "plain", "json")


def output_flag(f: Any) -> Any:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(OUTPUTS),
        default="auto",
        show_default=True,
        help="auto: the live view on a terminal, else plain; live: the live view; plain: one "
        "timestamped line per transition, and a heartbeat line for long waits "
        "(output.heartbeat); json: one event per line.",
    )(f)


def batch_flags(f: Any) -> Any:
    """How hosts are cut into batches (``fleet rollout`` and ``fleet plan``)."""
    options = [
        click.option(
            "--batches",
            default="1,100%",
            show_default=True,
            help="Batch sizes: counts or percentages; the last repeats.",
        ),
        click.option(
            "--by",
            metavar="LABEL",
            help="Spread batches across this label (datacenter, rack, or a label name).",
        ),
        click.option(
            "--serial-by",
            type=click.Choice(["datacenter", "rack"]),
            help="One datacenter (or rack) at a time: each gets its own batches, canary first; "
            "no batch mixes two.",
        ),
        option(
            "--max-per",
            type=Count(1),
            default=None,
            help="At most this many hosts of one datacenter or rack (of --serial-by, else of "
            "--by) in a batch",
        ),
    ]
    for decorate in reversed(options):
        f = decorate(f)
    return f


def rollout_flags(f: Any) -> Any:
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--limit", "-l", help="Hosts: names, groups, globs, label:k=v, dc:NAME, hybrid, !x, &y."
        ),
        batch_flags,
        option(
            "--concurrency",
            "-c",
            type=Count(1),
            default=None,
            help="Hosts at once (default: rollout.concurrency)",
        ),
        option(
            "--max-failures",
            type=Count(0),
            help="Halt when more hosts than this failed (default 0)",
        ),
        option(
            "--max-failure-ratio",
            "max_ratio",
            type=Ratio(),
            help="Halt when this share of started hosts failed",
        ),
        option(
            "--bake", type=Duration(), default="0s", show_default=True, help="Wait between batches"
        ),
        click.option(
            "--gate", metavar="CMD", help="Local command run between batches; non-zero halts."
        ),
        option(
            "--wait-for-leases",
            type=Duration(),
            default="0s",
            help="Wait this long for a host held by another run",
        ),
        output_flag,
    ]
    for decorate in reversed(options):
        f = decorate(f)
    return f
