"""``python`` stages: a built-in plan's function run on the controller, with the host at hand
(users' own functions, called with the host's Fabric connection, are :mod:`.usercall`'s).

Such a function reads the host through commands (``ctx.run``), parses their output in Python
(JSON, never scraped columns), and returns facts: a JSON-safe mapping that later stages use as
``{{ facts.NAME }}`` and ``when: {facts.NAME: value}``. A guard that refuses the host raises
:class:`fleet.errors.PayloadError`: the host fails and counts against the failure budget.

Built-in functions live under ``fleet.plans.``; any other ``call`` is a user's function.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleet.errors import PayloadError, PlanError
from fleet.inventory import Host
from fleet.plan import PYTHON_CALL_PREFIX
from fleet.stages import usercall
from fleet.stages.context import Context, Outcome
from fleet.transport.base import CommandResult

if TYPE_CHECKING:
    from fleet.plan import RenderedStage


@dataclass
class StageContext:
    """What a python stage's function gets: the host, plan vars, facts so far, its params."""

    host: Host
    vars: dict[str, Any]
    facts: dict[str, Any]
    params: dict[str, Any]
    mode: str
    runner: Callable[[str, float], CommandResult]
    notes: list[str] = field(default_factory=list)

    def run(self, command: str, timeout: float = 120) -> CommandResult:
        """Run a read-only command; the result comes back whatever its exit code."""
        return self.runner(command, timeout)

    def must(self, command: str, timeout: float = 120) -> CommandResult:
        """Run a command that must succeed; a failure refuses the host."""
        result = self.runner(command, timeout)
        if not result.ok:
            raise PayloadError(
                f"{self.host.name}: `{command[:80]}` exited {result.exit_code}: {result.excerpt(300)}"
            )
        return result

    def refuse(self, why: str) -> PayloadError:
        """The error a guard raises: ``raise ctx.refuse("sdb holds a filesystem")``."""
        return PayloadError(f"{self.host.name}: refused: {why}")


StageFunction = Callable[[StageContext], dict[str, Any]]


def resolve(call: str) -> StageFunction:
    if not call.startswith(PYTHON_CALL_PREFIX) or ":" not in call:
        raise PlanError(f"python stage call {call!r} is not {PYTHON_CALL_PREFIX}MODULE:FUNCTION")
    module_name, _, attr = call.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PlanError(f"python stage call {call!r}: {exc}") from exc
    if not callable(function):
        raise PlanError(f"python stage call {call!r} is not a function")
    return function  # type: ignore[no-any-return]


def call_stage(ctx: Context, stage: RenderedStage) -> dict[str, Any]:
    assert stage.call is not None  # checked when the plan was loaded
    function = resolve(stage.call)
    call = StageContext(
        host=ctx.host,
        vars={**ctx.vars, **ctx.host.vars},
        facts=dict(ctx.facts),
        params=dict(stage.params),
        mode=ctx.mode,
        runner=ctx.run_command,
    )
    facts = function(call)
    try:
        json.dumps(facts)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{stage.call} returned facts that are not JSON data: {exc}") from exc
    return facts


def run(ctx: Context, stage: RenderedStage) -> Outcome:
    """Call a built-in plan's function; journal the facts it returns so that a resume
    restores them. A user's function goes to :func:`fleet.stages.usercall.run`."""
    if stage.call is not None and not stage.call.startswith(PYTHON_CALL_PREFIX):
        return usercall.run(ctx, stage)
    ctx.emit("step.start", stage=stage.name, step="python")
    try:
        facts = call_stage(ctx, stage)
    except PayloadError as exc:
        ctx.emit("step.end", stage=stage.name, step="python", outcome="failed", excerpt=exc.message)
        raise
    ctx.emit("step.end", stage=stage.name, step="python", outcome="applied", data={"facts": facts})
    return Outcome(facts=facts)
