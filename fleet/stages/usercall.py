"""Users' ``python`` stages: a function of theirs run with the host's ``fabric.Connection``.

``call: tasks.py:deploy`` names a function in a file next to the plan, ``call:
package.module:deploy`` one in an importable module. The function gets the host's connection,
the very object the rollout opened (``c.run``, ``c.sudo``, ``c.put``, ``c.get`` are Fabric's),
so a fabfile task (``@task def deploy(c)``) runs unchanged; the stage's ``params`` are passed as
keyword arguments. Besides Fabric's attributes, ``c.fleet`` gives the host record
(``c.fleet.host``), the plan's and host's vars (``c.fleet.vars``), the facts gathered so far
(``c.fleet.facts``), the params, and ``c.fleet.note(text)``, a line in the stage's journaled
output (every command the function runs is journaled there too).

A stage converges like a shell step: ``check`` (a function: true means it already holds, and
``call`` is skipped), ``call``, then ``verify`` (false fails the stage). ``call`` may return
``"unchanged"`` (reported converged), ``"changed"`` or None (applied), or a mapping of facts for
later stages. A command that fails (Fabric raises on a non-zero exit) or an exception the
function raises fails the host as a payload failure, with the error in the journal.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fleet import plancode
from fleet.errors import FleetError, PayloadError, PlanError
from fleet.stages.context import Context, Outcome
from fleet.stages.output import kept
from fleet.transport.base import CommandResult

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import RenderedStage

_LOCK = threading.Lock()
_MODULES: dict[Path, tuple[float, ModuleType]] = {}
_OUTPUT_LIMIT = 1 << 16


@dataclass
class TaskView:
    """``c.fleet`` while a stage's function runs."""

    host: Host
    vars: Mapping[str, Any]
    facts: Mapping[str, Any]
    params: Mapping[str, Any]
    mode: str
    lines: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """A line of the stage's journaled output."""
        self.lines.append(str(text))

    # the connection's recorder: every command the function runs
    def command(self, command: str, exit_code: int, stdout: str, stderr: str) -> None:
        self.lines.append(f"$ {command}" + (f"  (exit {exit_code})" if exit_code else ""))
        self.lines += [line for line in (stdout + stderr).splitlines()]

    def output(self) -> str:
        text = "\n".join(self.lines)
        return text[-_OUTPUT_LIMIT:] + ("\n" if text else "")


def load(call: str, base: str | None) -> Callable[..., Any]:
    """The function (or fabfile task) ``call`` names; its file is loaded once per change."""
    target, name = plancode.split_call(call)
    try:
        if target.endswith(".py"):
            path = plancode.call_file(call, Path(base) if base else None)
            assert path is not None
            module = _load_file(path)
        else:
            module = importlib.import_module(target)
        function = getattr(module, name)
    except plancode.CodeError as exc:
        raise PlanError(str(exc)) from exc
    except (ImportError, AttributeError, SyntaxError) as exc:
        raise PlanError(f"python stage call {call!r}: {exc}") from exc
    if not callable(function):
        raise PlanError(f"python stage call {call!r} is not a function")
    return function  # type: ignore[no-any-return]


def _load_file(path: Path) -> ModuleType:
    """Load a plan's Python file as a module of its own (its directory importable, as a
    fabfile's is), once per modification."""
    mtime = path.stat().st_mtime
    with _LOCK:
        cached = _MODULES.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        name = f"fleet_plan_code.{path.stem}_{abs(hash(path)):x}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[path] = (mtime, module)
        return module


def run(ctx: Context, stage: RenderedStage) -> Outcome:
    """Check, call and verify a user's function on the host; journal what it did."""
    assert stage.call is not None
    connection = getattr(ctx.session(), "connection", None)
    if connection is None:
        raise PayloadError(f"{ctx.host.name}: python stages need an SSH session with Fabric")
    view = TaskView(
        ctx.host, {**ctx.vars, **ctx.host.vars}, dict(ctx.facts), dict(stage.params), ctx.mode
    )
    ctx.emit("step.start", stage=stage.name, step="python", data={"call": stage.call})
    connection.fleet, connection.recorder = view, view
    try:
        outcome, facts = _converge(connection, stage, view)
    except (PayloadError, PlanError) as exc:
        _end(ctx, stage, "failed", view, excerpt=exc.message)
        raise
    finally:
        connection.fleet = connection.recorder = None
    _end(ctx, stage, outcome, view, facts=facts)
    return Outcome(facts=facts)


def _converge(connection: Any, stage: RenderedStage, view: TaskView) -> tuple[str, dict[str, Any]]:
    assert stage.call is not None
    if stage.check and _call(stage.check, stage, connection, view, all_params=False):
        view.note(f"check {stage.check}: already holds")
        return "converged", {}
    value = _call(stage.call, stage, connection, view)
    if stage.verify and not _call(stage.verify, stage, connection, view, all_params=False):
        raise PayloadError(f"{view.host.name}: {stage.name}: verify {stage.verify} is false")
    if isinstance(value, Mapping):
        return "applied", _facts(stage.call, value)
    if value in (None, "changed", True):
        return "applied", {}
    if value == "unchanged":
        return "converged", {}
    raise PayloadError(
        f"{view.host.name}: {stage.call} returned {value!r}: return 'changed', 'unchanged', "
        "None or a mapping of facts"
    )


def _call(
    call: str, stage: RenderedStage, connection: Any, view: TaskView, *, all_params: bool = True
) -> Any:
    """Call ``call`` with the connection and the stage's params (``check`` and ``verify``
    functions get only the params their signature names)."""
    function = load(call, stage.base)
    params = dict(view.params) if all_params else _accepted(function, view.params)
    try:
        return function(connection, **params)
    except FleetError:
        raise
    except Exception as exc:  # the plan's own code: its failure fails this host
        result = getattr(exc, "result", None)  # invoke's UnexpectedExit carries the command's
        if result is not None and hasattr(result, "exited"):
            why = f"`{str(result.command)[:80]}` exited {result.exited}"
        else:
            frames = traceback.format_exception_only(type(exc), exc)
            why = "".join(frames).strip()
        raise PayloadError(f"{view.host.name}: {call}: {why}") from exc


def _accepted(function: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        signature = inspect.signature(getattr(function, "body", function))  # a fabfile task's body
    except (TypeError, ValueError):
        return dict(params)
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return dict(params)
    return {k: v for k, v in params.items() if k in signature.parameters}


def _facts(call: str, value: Mapping[str, Any]) -> dict[str, Any]:
    facts = dict(value)
    try:
        json.dumps(facts)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{call} returned facts that are not JSON data: {exc}") from exc
    return facts


def _end(
    ctx: Context,
    stage: RenderedStage,
    outcome: str,
    view: TaskView,
    *,
    excerpt: str | None = None,
    facts: dict[str, Any] | None = None,
) -> None:
    report = CommandResult(str(stage.call), 0 if outcome != "failed" else 1, view.output(), "", 0.0)
    ctx.output(f"{stage.name}/python", report)
    data: dict[str, Any] = {"call": stage.call}
    if facts:
        data["facts"] = facts
    output = kept(report)
    if output:
        data["output"] = output
    ctx.emit(
        "step.end", stage=stage.name, step="python", outcome=outcome, excerpt=excerpt, data=data
    )
