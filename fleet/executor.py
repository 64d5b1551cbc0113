"""One host's pipeline: take its lease, run the stages in order, journal before and after.

A pipeline takes only data (:class:`HostJob`) plus process-wide services (:class:`Services`: the
store, an SSH connector, a provider) and reports only through the journal, so running it in a
thread today or in a worker process later is the same code.

Failures are classified:

* *payload*: a step's command or verify failed. Counted against the failure budget at once.
* *infrastructure*: provider/API errors, SSH unreachable, reboot timeouts. The pipeline is retried
  (``infra_retries``) from where it stood, then counted against the budget.
* *hostkey*: the host presented an unexpected key. Never retried; counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleet.errors import (
    FleetError,
    HostKeyMismatch,
    LeaseHeld,
    PayloadError,
    PlanError,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    TransportError,
)
from fleet.inventory import Host
from fleet.journal import Journal
from fleet.leases import LeaseKeeper, LeaseLost, StopSignal
from fleet.plan import (
    Plan,
    RenderedStep,
    host_context,
    render,
    render_stage,
    with_facts,
)
from fleet.provider.base import Provider
from fleet.store.base import Lease, Owner, Store
from fleet.transport.base import CommandResult, Endpoint, KeyExpectation, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecSettings:
    """Settings a pipeline needs, as plain data."""

    lease_ttl: float = 300.0
    reboot_timeout: float = 900.0
    ssh_poll: float = 5.0
    rescue_public_key: str | None = None
    infra_retries: int = 2
    infra_retry_delay: float = 5.0
    wait_for_leases: float = 0.0
    key_file: str | None = None


@dataclass(frozen=True)
class HostJob:
    """Everything one pipeline needs: the host, its rendered plan, and what earlier attempts did."""

    host: Host
    plan: Plan
    run_id: str
    owner: Owner
    settings: ExecSettings
    done_steps: frozenset[str] = frozenset()  # step keys that ended converged/applied before
    mode: str = "disk"  # boot mode the host is in when the pipeline starts (from the journal)
    facts: dict[str, Any] = field(default_factory=dict)  # gathered by earlier python stages


@dataclass(frozen=True)
class HostResult:
    """How a host ended. ``outcome``: ok, failed, stopped (resumable), skipped."""

    host: str
    outcome: str
    failure: str | None = None  # payload, infrastructure, hostkey, lease, quarantine
    stage: str | None = None
    step: str | None = None
    message: str | None = None
    applied: int = 0

    @property
    def counts_against_budget(self) -> bool:
        return self.outcome == "failed"


class Connector(Protocol):
    """Opens SSH sessions (``fleet.transport.ssh.SshConnector``)."""

    def open(self, endpoint: Endpoint, expect: KeyExpectation) -> Transport: ...

    def wait_for_ssh(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation = ...,
        *,
        timeout: float,
        poll_interval: float = ...,
        identity_check: Callable[[Any], bool] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Transport: ...


@dataclass
class Services:
    """Process-wide services shared by pipelines (each is thread-safe)."""

    store: Store
    connector: Connector
    provider_factory: Callable[[], Provider] | None = None
    leases: LeaseKeeper | None = None
    stop: StopSignal = field(default_factory=StopSignal)
    _provider: Provider | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def provider(self) -> Provider:
        with self._lock:
            if self._provider is None:
                if self.provider_factory is None:
                    raise FleetError(
                        "this plan has provider stages but no OVH provider is configured"
                    )
                self._provider = self.provider_factory()
            return self._provider


class StepFailed(FleetError):
    """A step's apply or verify failed: a payload failure."""

    def __init__(self, step: RenderedStep, part: str, result: CommandResult) -> None:
        super().__init__(f"{step.key}: {part} exited {result.exit_code}")
        self.step = step
        self.part = part
        self.result = result


class Stopped(FleetError):
    """The rollout asked this pipeline to stop between steps."""


# ---------------------------------------------------------------------------------------------


class Pipeline:
    """Runs one :class:`HostJob`. Create one per host and call :meth:`run`."""

    def __init__(self, job: HostJob, services: Services, journal: Journal) -> None:
        self.job = job
        self.svc = services
        self.journal = journal
        self.host = job.host
        self.done: set[str] = set(job.done_steps)
        self.mode = job.mode
        self.facts: dict[str, Any] = dict(job.facts)
        self.base_ctx = host_context(job.host, job.plan.vars)
        self.transport: Transport | None = None
        self.applied = 0
        self.position: tuple[str | None, str | None] = (None, None)

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> HostResult:
        name = self.host.name
        if self.svc.stop.soft.is_set():
            return HostResult(name, "stopped", message=self.svc.stop.reason)
        try:
            lease = self._take_lease()
        except LeaseHeld as exc:
            self.journal.emit("host.skip", host=name, outcome="lease", excerpt=exc.message)
            return HostResult(name, "skipped", "lease", message=exc.message)
        self.journal.emit("host.start", host=name, data={"token": lease.token, "mode": self.mode})
        try:
            result = self._attempts()
        finally:
            self._close()
            if self.svc.leases:
                self.svc.leases.release(name)
        self.journal.emit(
            "host.end",
            host=name,
            stage=result.stage,
            step=result.step,
            outcome=result.outcome,
            excerpt=result.message,
            data={"failure": result.failure, "applied": result.applied},
        )
        return result

    def _take_lease(self) -> Lease:
        assert self.svc.leases is not None, "pipelines run under a LeaseKeeper"
        s = self.job.settings
        return self.svc.leases.acquire(
            self.host.name, self.job.owner, s.wait_for_leases, self.svc.stop
        )

    def _attempts(self) -> HostResult:
        s = self.job.settings
        for attempt in range(s.infra_retries + 1):
            try:
                self._stages()
                return HostResult(self.host.name, "ok", applied=self.applied)
            except Stopped as exc:
                return self._result("stopped", None, exc.message)
            except (StepFailed, PayloadError, PlanError, ProviderRefused) as exc:
                return self._result("failed", "payload", exc.message)
            except HostKeyMismatch as exc:
                return self._result("failed", "hostkey", exc.message)
            except (LeaseLost, ProviderAuthError) as exc:
                return self._result("failed", "infrastructure", exc.message)
            except (TransportError, ProviderError) as exc:
                if self.svc.stop.hard.is_set():
                    return self._result("stopped", None, "cut by abort: " + exc.message)
                self._close()
                left = s.infra_retries - attempt
                self.journal.emit(
                    "host.retry",
                    host=self.host.name,
                    stage=self.position[0],
                    step=self.position[1],
                    excerpt=exc.message,
                    query_id=getattr(exc, "query_id", None),
                    data={"left": left},
                )
                if left == 0:
                    return self._result("failed", "infrastructure", exc.message)
                if self.svc.stop.soft.wait(s.infra_retry_delay * (2**attempt)):
                    return self._result("stopped", None, self.svc.stop.reason)
        raise AssertionError("unreachable")

    def _result(self, outcome: str, failure: str | None, message: str) -> HostResult:
        stage, step = self.position
        return HostResult(self.host.name, outcome, failure, stage, step, message, self.applied)

    # -- stages ----------------------------------------------------------------------------
    def _plan_converged(self) -> bool:
        """Run the plan's own ``converged`` check once, before anything else."""
        plan = self.job.plan
        if plan.converged is None or self.done:
            return False
        command = render(plan.converged, self.base_ctx, where="converged", source=plan.source)
        if not self.run_command(command, 120).ok:
            return False
        for stage in plan.stages:
            steps = [s.name for s in stage.steps] or [stage.kind]
            for step in steps:
                self.journal.emit(
                    "step.end",
                    host=self.host.name,
                    stage=stage.name,
                    step=step,
                    outcome="converged",
                    data={"by": "plan converged check"},
                )
        return True

    def _stages(self) -> None:
        from fleet import boot  # provider stages; imported here to keep the import graph flat

        if self._plan_converged():
            return
        plan = self.job.plan
        for spec in plan.stages:
            self.position = (spec.name, None)
            stage, _ = render_stage(plan, spec, with_facts(self.base_ctx, self.facts))
            if stage is None:
                continue
            if stage.kind == "ssh":
                for step in stage.steps:
                    self._step(step)
                continue
            key = f"{stage.name}/{stage.kind}"
            if key in self.done:
                continue
            self._check_stop()
            if stage.kind == "python":
                from fleet.stagecall import run_python_stage

                self.facts.update(run_python_stage(self, stage))
            else:
                self._close()
                self.mode = boot.run_stage(self, stage)
            self.done.add(key)

    def _check_stop(self) -> None:
        if self.svc.stop.soft.is_set():
            raise Stopped(
                f"{self.host.name}: stopped before {self.position[0]}: {self.svc.stop.reason}"
            )

    def _step(self, step: RenderedStep) -> None:
        if step.key in self.done:
            return
        self.position = (step.stage, step.name)
        self._check_stop()
        self.journal.emit("step.start", host=self.host.name, stage=step.stage, step=step.name)
        if step.check is not None:
            checked = self.run_command(step.check, step.timeout)
            if checked.ok:
                self._step_end(step, "converged", checked)
                return
        if step.destructive and self.svc.leases:
            self.svc.leases.ensure(self.host.name)  # fencing: still ours right before we destroy
        result = self._apply(step)
        if step.verify is not None:
            verified = self.run_command(step.verify, step.timeout)
            if not verified.ok:
                self._step_end(step, "failed", verified, part="verify")
                raise StepFailed(step, "verify", verified)
        self.applied += 1
        self._step_end(step, "applied", result)

    def _apply(self, step: RenderedStep) -> CommandResult:
        for attempt in range(step.retries + 1):
            result = self.run_command(step.apply, step.timeout)
            self.journal.output(self.host.name, step.key, result)
            if result.ok:
                return result
            if attempt < step.retries:
                self.journal.emit(
                    "step.retry",
                    host=self.host.name,
                    stage=step.stage,
                    step=step.name,
                    exit_code=result.exit_code,
                    excerpt=result.excerpt(),
                )
                if self.svc.stop.soft.wait(step.retry_delay):
                    break
        self._step_end(step, "failed", result, part="apply")
        raise StepFailed(step, "apply", result)

    def _step_end(
        self, step: RenderedStep, outcome: str, result: CommandResult, part: str = ""
    ) -> None:
        data: dict[str, Any] = {"duration": round(result.duration, 3)}
        if part:
            data["part"] = part
        self.journal.emit(
            "step.end",
            host=self.host.name,
            stage=step.stage,
            step=step.name,
            outcome=outcome,
            exit_code=result.exit_code,
            excerpt=result.excerpt() if not result.ok else None,
            data=data,
        )
        if outcome in ("converged", "applied"):
            self.done.add(step.key)

    # -- SSH -------------------------------------------------------------------------------
    def session(self) -> Transport:
        if self.transport is None:
            expect = KeyExpectation(role=self.mode)
            self.transport = self.svc.connector.open(self.endpoint, expect)
            self.svc.stop.track(self.transport)
        return self.transport

    @property
    def endpoint(self) -> Endpoint:
        h = self.host
        return Endpoint(h.name, h.address, h.port, h.user, h.key_file or self.job.settings.key_file)

    def run_command(self, command: str, timeout: float) -> CommandResult:
        return self.session().run(command, timeout=timeout)

    def adopt(self, transport: Transport) -> None:
        """Use ``transport`` (opened by a provider stage) for the next steps."""
        self._close()
        self.transport = transport
        self.svc.stop.track(transport)

    def _close(self) -> None:
        if self.transport is not None:
            self.svc.stop.untrack(self.transport)
            self.transport.close()
            self.transport = None


def run_host(job: HostJob, services: Services, journal: Journal) -> HostResult:
    """Run one host's pipeline; a failure is a value, never an exception."""
    try:
        return Pipeline(job, services, journal).run()
    except FleetError as exc:  # store trouble and the like: report, don't kill the rollout
        log.exception("Host %r: pipeline error", job.host.name)
        return HostResult(job.host.name, "failed", "infrastructure", message=exc.message)
