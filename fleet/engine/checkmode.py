"""``fleet rollout --check``: what a rollout would change, from its read-only checks alone.

On each host (in its installed system, with its pinned key) the plan's ``converged`` command
runs first, then every step's ``check``: a check that passes means the step is converged, one
that fails means the rollout would apply it. Nothing else runs: no apply, no verify, no reboot,
no lease, no run record. What cannot be known without changing the host is said so: a step
without a check, a check that needs facts a python stage gathers, python and file steps, and
everything after a stage that would reboot the host (its checks would run in another system).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fleet.errors import FleetError
from fleet.plan import HostPlan, RenderedStage, RenderedStep
from fleet.transport.base import CommandResult

#: A host's session: runs a read-only command (``sudo`` asks for root) and is closed after.
Runner = Callable[[str, float, bool], CommandResult]
#: Stage kinds that reboot (or reinstall) the host when they apply.
REBOOTING = ("rescue", "reboot", "reinstall")
#: Stage kinds already where they would leave a host that answers in its installed system.
ON_DISK = ("disk", "wait_ssh")
_PENDING = "<facts."


@dataclass
class HostCheck:
    """One host's verdict: ``would`` lists what a rollout would apply, ``unknown`` what the
    checks cannot tell (with why), ``error`` when the host could not be checked at all."""

    host: str
    converged: list[str] = field(default_factory=list)
    would: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def changes(self) -> bool:
        return bool(self.would or self.unknown)

    def line(self) -> str:
        if self.error:
            return f"{self.host}: could not be checked: {self.error}"
        if not self.changes:
            return f"{self.host}: converged ({len(self.converged)} steps)"
        parts = []
        if self.would:
            parts.append(f"would apply {len(self.would)} ({', '.join(self.would)})")
        if self.unknown:
            parts.append(f"{len(self.unknown)} not checked ({'; '.join(self.unknown)})")
        parts.append(f"{len(self.converged)} converged")
        return f"{self.host}: " + ", ".join(parts)


def check_host(hp: HostPlan, run: Runner) -> HostCheck:
    """Run ``hp``'s read-only checks through ``run``; never raises for the host's sake."""
    verdict = HostCheck(hp.host)
    try:
        converged = hp.converged
        if converged is not None and _PENDING not in converged and run(converged, 120, False).ok:
            verdict.converged += [s.key for st in hp.stages for s in st.steps] or ["plan"]
            return verdict
        for i, stage in enumerate(hp.stages):
            if stage.kind in REBOOTING:
                rest = [s.name for s in hp.stages[i + 1 :]]
                verdict.would.append(f"{stage.name} [{stage.kind}]")
                if rest:
                    verdict.unknown.append(f"{', '.join(rest)}: after a reboot")
                break
            _stage(stage, run, verdict)
    except FleetError as exc:
        verdict.error = exc.message
    return verdict


def _stage(stage: RenderedStage, run: Runner, verdict: HostCheck) -> None:
    if stage.kind in ON_DISK:  # the check session is the installed system, pinned key
        verdict.converged.append(f"{stage.name}/{stage.kind}")
        return
    if stage.kind != "ssh":
        why = "a python stage runs its own check" if stage.kind == "python" else stage.kind
        verdict.unknown.append(f"{stage.name}: {why}")
        return
    for step in stage.steps:
        _step(step, run, verdict)


def _step(step: RenderedStep, run: Runner, verdict: HostCheck) -> None:
    mark = " (destructive)" if step.destructive else ""
    if step.file is not None:
        verdict.unknown.append(f"{step.key}: a file step (`fleet plan --diff` compares it)")
    elif step.check is None:
        verdict.would.append(f"{step.key}{mark} (no check: always runs)")
    elif _PENDING in step.check:
        verdict.unknown.append(f"{step.key}: its check needs facts gathered during the rollout")
    elif run(step.check, step.timeout, step.sudo).ok:
        verdict.converged.append(step.key)
    else:
        verdict.would.append(step.key + mark)


def check_all(
    rendered: Sequence[HostPlan],
    session: Callable[[str], tuple[Runner, Callable[[], None]]],
    concurrency: int,
) -> list[HostCheck]:
    """Every host's verdict, ``concurrency`` hosts at once; ``session(host)`` opens one
    host's runner and what closes it (a host that cannot be reached fails when a command
    runs: that host's error)."""

    def one(hp: HostPlan) -> HostCheck:
        try:
            runner, close = session(hp.host)
        except FleetError as exc:
            return HostCheck(hp.host, error=exc.message)
        try:
            return check_host(hp, runner)
        finally:
            close()

    with ThreadPoolExecutor(max(1, min(concurrency, len(rendered)))) as pool:
        return list(pool.map(one, rendered))


def summary(checks: Sequence[HostCheck]) -> str:
    changing = sum(1 for c in checks if c.changes and not c.error)
    failed = sum(1 for c in checks if c.error)
    same = len(checks) - changing - failed
    return (
        f"would change {changing} of {len(checks)} hosts; {same} converged; "
        f"{failed} could not be checked; nothing was changed"
    )
