"""``ssh`` stages: converging steps run through the host's shell.

Each step is journaled before and after: ``check`` (already converged? then skip), ``apply``
(with its retries), ``verify`` (prove it). A step that ended converged or applied in an earlier
attempt of the run is skipped; a destructive step proves the host's lease right before it runs.
File steps (``put``, ``template``) converge the same way, by checksum (:mod:`.files`). Each
step's output is kept in its ``step.end`` event (:mod:`.output`); ``sudo`` runs its commands
as root through sudo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError, PayloadError, PlanError
from fleet.stages import files
from fleet.stages.context import Context, Outcome
from fleet.stages.output import kept
from fleet.transport.base import CommandResult

if TYPE_CHECKING:
    from fleet.plan import RenderedStage, RenderedStep


class StepFailed(FleetError):
    """A step's apply or verify failed: a payload failure."""

    def __init__(self, step: RenderedStep, part: str, result: CommandResult) -> None:
        super().__init__(f"{step.key}: {part} exited {result.exit_code}")
        self.step = step
        self.part = part
        self.result = result


def run(ctx: Context, stage: RenderedStage) -> Outcome:
    for step in stage.steps:
        _step(ctx, step)
    return Outcome()


def _step(ctx: Context, step: RenderedStep) -> None:
    if ctx.is_done(step.key):
        return
    ctx.at(step.stage, step.name)
    ctx.check_stop()
    ctx.emit("step.start", stage=step.stage, step=step.name)
    if step.file is not None:
        try:
            outcome, report = files.run_step(ctx, step)
        except (PayloadError, PlanError) as exc:
            ctx.emit(
                "step.end", stage=step.stage, step=step.name, outcome="failed", excerpt=exc.message
            )
            raise
        ctx.output(step.key, report)
        _end(ctx, step, outcome, report)
        return
    if step.check is not None:
        checked = ctx.run_command(step.check, step.timeout, sudo=step.sudo)
        if checked.ok:
            _end(ctx, step, "converged", checked)
            return
    if step.destructive:
        ctx.fence()  # still ours right before we destroy
    result = _apply(ctx, step)
    if step.verify is not None:
        verified = ctx.run_command(step.verify, step.timeout, sudo=step.sudo)
        if not verified.ok:
            _end(ctx, step, "failed", verified, part="verify")
            raise StepFailed(step, "verify", verified)
    _end(ctx, step, "applied", result)


def _apply(ctx: Context, step: RenderedStep) -> CommandResult:
    for attempt in range(step.retries + 1):
        result = ctx.run_command(step.apply, step.timeout, sudo=step.sudo)
        ctx.output(step.key, result)
        if result.ok:
            return result
        if attempt < step.retries:
            ctx.emit(
                "step.retry",
                stage=step.stage,
                step=step.name,
                exit_code=result.exit_code,
                excerpt=result.excerpt(),
            )
            if ctx.pause(step.retry_delay):
                break
    _end(ctx, step, "failed", result, part="apply")
    raise StepFailed(step, "apply", result)


def _end(
    ctx: Context, step: RenderedStep, outcome: str, result: CommandResult, part: str = ""
) -> None:
    data: dict[str, Any] = {"duration": round(result.duration, 3)}
    if part:
        data["part"] = part
    output = kept(result)
    if output:
        data["output"] = output
    ctx.emit(
        "step.end",
        stage=step.stage,
        step=step.name,
        outcome=outcome,
        exit_code=result.exit_code,
        excerpt=result.excerpt() if not result.ok else None,
        data=data,
    )
    if outcome in ("converged", "applied"):
        ctx.mark_done(step.key, applied=outcome == "applied")
