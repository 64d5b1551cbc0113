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
from collections.abc import Callable, Mapping
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
    from fleet.provider.base import Hardware
    from fleet.store.base import OwnedArray


def _nothing_owned() -> list[OwnedArray]:
    return []


def _no_hardware() -> Hardware | None:
    return None


@dataclass
class StageContext:
    """What a python stage's function gets: the host, plan vars, facts so far, its params.

    Also what fleet recorded about the host's disks (``owned``: the arrays it created there;
    ``record`` adds one), OVH's hardware specification (``hardware``, None without
    ``ovh_service``), and for a run started from an approved preview, the digest the preview
    recorded for this host (``approved``). ``preview`` is true when ``fleet plan --probe`` runs
    the stage (read-only, on whatever system the host runs now).
    """

    host: Host
    vars: dict[str, Any]
    facts: dict[str, Any]
    params: dict[str, Any]
    mode: str
    runner: Callable[[str, float], CommandResult]
    notes: list[str] = field(default_factory=list)
    run_id: str = ""
    owned: Callable[[], list[OwnedArray]] = _nothing_owned
    record: Callable[[OwnedArray], None] | None = None
    hardware: Callable[[], Hardware | None] = _no_hardware
    approved: str | None = None
    preview: bool = False

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
        run_id=ctx.run_id,
        owned=ctx.owned_arrays,
        record=ctx.record_array,
        hardware=ctx.hardware,
        approved=approved_digest(ctx.run_options(), ctx.host.name),
    )
    facts = function(call)
    try:
        json.dumps(facts)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{stage.call} returned facts that are not JSON data: {exc}") from exc
    return facts


def approved_digest(options: Mapping[str, Any], host: str) -> str | None:
    """The decision digest a run's approved preview recorded for ``host`` (None: no preview
    was approved for this run)."""
    approved = options.get("approved_preview")
    if not isinstance(approved, Mapping):
        return None
    hosts = approved.get("hosts")
    return str(hosts.get(host, "")) if isinstance(hosts, Mapping) else ""


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
