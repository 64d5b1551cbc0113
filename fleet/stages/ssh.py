"""``ssh`` stages: converging steps run through the host's shell.

Each step is journaled before and after: ``check`` (already converged? then skip), ``apply``
(then ``verify``, to prove it; both retried together with backoff and jitter when the step has
``retries``). A step that ended converged or applied in an earlier
attempt of the run is skipped; a destructive step proves the host's lease right before it runs.

``apply`` runs under the step's host-side lock (:mod:`fleet.stages.remote`). A step *in doubt*
(an earlier attempt journaled its start, not its end) first waits for that lock and reads what
the host recorded: an execution that ran to a successful end is not run again (its end is
journaled as ``applied``, ``adopted`` from the host's record); otherwise the step runs as usual.

File steps (``put``, ``template``) converge the same way, by checksum (:mod:`.files`). Each
step's output is kept in its ``step.end`` event (:mod:`.output`); ``sudo`` runs its commands
as root through sudo (the host-side lock too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError, PayloadError, PlanError, TransportError
from fleet.retry import Backoff
from fleet.stages import files, remote
from fleet.stages.context import Context, Outcome
from fleet.stages.output import kept
from fleet.transport.base import CommandResult

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from fleet.plan import RenderedStage, RenderedStep


class StepFailed(FleetError):
    """A step's apply or verify failed: a payload failure."""

    def __init__(self, step: RenderedStep, part: str, result: CommandResult) -> None:
        super().__init__(f"{step.key}: {part} exited {result.exit_code}")
        self.step = step
        self.part = part
        self.result = result


class StepLocked(TransportError):
    """A step's host-side lock: still held by an earlier execution after the wait, or not
    usable on that host. Infrastructure: retried, then the host fails."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(
            why,
            host=host,
            hint="an earlier execution of the step may still run there: look before resuming",
        )


def run(ctx: Context, stage: RenderedStage) -> Outcome:
    for step in stage.steps:
        _step(ctx, step)
    return Outcome()


def _step(ctx: Context, step: RenderedStep) -> None:
    if ctx.is_done(step.key):
        return
    ctx.at(step.stage, step.name)
    ctx.check_stop()
    doubt = ctx.in_doubt(step.key)
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
    recorded = _recorded(ctx, step) if doubt else None
    if recorded is not None:  # it ran to its end: verify, never run it twice
        _verify(ctx, step)
        _end(ctx, step, "applied", recorded, adopted=True)
        return
    if step.check is not None:
        checked = ctx.run_command(step.check, step.timeout, sudo=step.sudo)
        if checked.ok:
            _end(ctx, step, "converged", checked)
            return
    if step.destructive:
        ctx.fence()  # still ours right before we destroy
    result = _apply(ctx, step)  # with its verify
    _end(ctx, step, "applied", result)


def _verify(ctx: Context, step: RenderedStep) -> None:
    if step.verify is not None:
        verified = ctx.run_command(step.verify, step.timeout, sudo=step.sudo)
        if not verified.ok:
            _end(ctx, step, "failed", verified, part="verify")
            raise StepFailed(step, "verify", verified)


def _recorded(ctx: Context, step: RenderedStep) -> CommandResult | None:
    """The host's record of an earlier execution that ended well, after waiting for it."""
    record = ctx.step_record(step.key, step.timeout, sudo=step.sudo)
    if record is None or not record.finished_ok:
        return None
    return CommandResult(step.apply, 0, "", "", 0.0)


def _locked_apply(ctx: Context, step: RenderedStep) -> CommandResult:
    """One execution of ``apply`` under the step's lock; found held (an earlier execution still
    runs), wait for it and take its outcome when it ended well."""
    result = ctx.run_step(step.key, step.apply, step.timeout, sudo=step.sudo)
    trouble = remote.lock_trouble(result.exit_code, result.stderr)
    if trouble is None:
        return result
    if result.exit_code != remote.HELD:
        raise StepLocked(ctx.host.name, trouble)
    earlier = _recorded(ctx, step)
    return earlier or ctx.run_step(step.key, step.apply, step.timeout, sudo=step.sudo)


def _apply(ctx: Context, step: RenderedStep) -> CommandResult:
    """``apply`` then ``verify``, retried together under the step's :class:`~fleet.retry.Backoff`
    (``retries`` more attempts, waits from ``retry_delay`` doubling, with jitter; a halt or
    Ctrl-C during a wait ends them). Raises StepFailed naming the part that failed last."""

    def attempt() -> tuple[str, CommandResult]:
        result = _locked_apply(ctx, step)
        ctx.output(step.key, result)
        if not result.ok or step.verify is None:
            return ("ok" if result.ok else "apply"), result
        verified = ctx.run_command(step.verify, step.timeout, sudo=step.sudo)
        return ("ok" if verified.ok else "verify"), (result if verified.ok else verified)

    def before_retry(state: RetryCallState, wait: float) -> None:
        part, failed = state.outcome.result() if state.outcome else ("apply", None)
        ctx.emit(
            "step.retry",
            stage=step.stage,
            step=step.name,
            exit_code=failed.exit_code if failed else None,
            excerpt=f"{part} failed; again in {wait:.1f}s"
            + (f": {failed.excerpt()}" if failed else ""),
        )

    if step.retries == 0:  # most steps: one attempt, no retry machinery on the hot path
        part, result = attempt()
    else:
        policy = Backoff(attempts=step.retries + 1, initial=step.retry_delay)
        part, result = policy.call(
            attempt, pause=ctx.pause, on_result=lambda o: o[0] != "ok", before_retry=before_retry
        )
    if part != "ok":
        _end(ctx, step, "failed", result, part=part)
        raise StepFailed(step, part, result)
    return result


def _end(
    ctx: Context,
    step: RenderedStep,
    outcome: str,
    result: CommandResult,
    part: str = "",
    *,
    adopted: bool = False,
) -> None:
    data: dict[str, Any] = {"duration": round(result.duration, 3)}
    if part:
        data["part"] = part
    if adopted:
        data["adopted"] = "the host's record of an earlier execution that ended well"
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
