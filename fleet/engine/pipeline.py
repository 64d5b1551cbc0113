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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.engine.journal import Journal
from fleet.engine.leases import LeaseKeeper, LeaseLost, StopSignal
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
from fleet.plan import Plan, host_context, render, render_stage, with_facts
from fleet.provider.base import Provider
from fleet.stages.context import Connector, ExecSettings
from fleet.stages.registry import STAGES
from fleet.stages.ssh import StepFailed
from fleet.store.base import Event, Lease, Owner, Store
from fleet.transport.base import CommandResult, Endpoint, KeyExpectation, Transport

log = logging.getLogger(__name__)


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
        if self._plan_converged():
            return
        plan = self.job.plan
        for spec in plan.stages:
            self.position = (spec.name, None)
            stage, _ = render_stage(plan, spec, with_facts(self.base_ctx, self.facts))
            if stage is None:
                continue
            kind = STAGES[stage.kind]
            if kind.per_step:
                kind.run(self, stage)
                continue
            key = f"{stage.name}/{stage.kind}"
            if key in self.done:
                continue
            self.check_stop()
            if kind.fresh_session:
                self._close()
            outcome = kind.run(self, stage)
            self.facts.update(outcome.facts)
            if outcome.mode is not None:
                self.mode = outcome.mode
            self.done.add(key)

    # -- the stage context (fleet.stages.context.Context) ---------------------------------
    @property
    def run_id(self) -> str:
        return self.job.run_id

    @property
    def settings(self) -> ExecSettings:
        return self.job.settings

    @property
    def vars(self) -> Mapping[str, Any]:
        return self.job.plan.vars

    @property
    def provider(self) -> Provider:
        return self.svc.provider

    @property
    def connector(self) -> Connector:
        return self.svc.connector

    @property
    def endpoint(self) -> Endpoint:
        h = self.host
        return replace(h.endpoint, key_file=h.key_file or self.job.settings.key_file)

    def session(self) -> Transport:
        if self.transport is None:
            expect = KeyExpectation(role=self.mode)
            self.transport = self.svc.connector.open(self.endpoint, expect)
            self.svc.stop.track(self.transport)
        return self.transport

    def run_command(self, command: str, timeout: float, *, sudo: bool = False) -> CommandResult:
        if self.host.command_timeout is not None:  # the host's own bound on every command
            timeout = min(timeout, self.host.command_timeout)
        session = self.session()
        if not sudo:
            return session.run(command, timeout=timeout)
        run_sudo = getattr(session, "sudo", None)
        if run_sudo is None:
            raise PayloadError(f"{self.host.name}: this session cannot run commands through sudo")
        result: CommandResult = run_sudo(command, timeout=timeout)
        return result

    def adopt(self, transport: Transport) -> None:
        """Use ``transport`` (opened by a provider stage) for the next steps."""
        self._close()
        self.transport = transport
        self.svc.stop.track(transport)

    def pinned_key(self, role: str) -> tuple[str, str] | None:
        return self.svc.store.pinned_key(self.host.name, role)

    def emit(self, kind: str, **fields: Any) -> Event:
        return self.journal.emit(kind, host=self.host.name, **fields)

    def output(self, step: str, result: CommandResult) -> None:
        self.journal.output(self.host.name, step, result)

    def run_options(self) -> Mapping[str, Any]:
        return self.svc.store.get_run(self.job.run_id).options

    def host_events(self) -> list[Event]:
        return self.svc.store.events(self.job.run_id, self.host.name)

    def fence(self) -> None:
        if self.svc.leases:
            self.svc.leases.ensure(self.host.name)

    def check_stop(self) -> None:
        if self.svc.stop.soft.is_set():
            raise Stopped(
                f"{self.host.name}: stopped before {self.position[0]}: {self.svc.stop.reason}"
            )

    def pause(self, seconds: float) -> bool:
        return self.svc.stop.soft.wait(seconds)

    def at(self, stage: str, step: str | None) -> None:
        self.position = (stage, step)

    def is_done(self, key: str) -> bool:
        return key in self.done

    def mark_done(self, key: str, *, applied: bool) -> None:
        self.done.add(key)
        if applied:
            self.applied += 1

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
