"""One host's pipeline: take its lease, run the stages in order, journal before and after.

A pipeline takes only data (:class:`HostJob`) plus process-wide services (:class:`Services`) and
reports only through the journal: the same code in a thread or on a worker (:mod:`fleet.workers`).

Failures are classified:

* *payload*: a step's command or verify failed. Counted against the failure budget at once.
* *infrastructure*: provider/API errors, SSH unreachable, reboot timeouts. The pipeline is retried
  (``infra_retries``) from where it stood, then counted against the budget.
* *hostkey*: the host presented an unexpected key. Never retried; counted.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.engine.journal import Journal
from fleet.engine.leases import LeaseKeeper, StopSignal
from fleet.errors import (
    CommandTimeout,
    ConfigError,
    FleetError,
    HostKeyMismatch,
    LeaseHeld,
    LeaseLost,
    PayloadError,
    PlanError,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    TransportError,
)
from fleet.inventory import Host
from fleet.plan import Plan, host_context, render, render_stage, with_facts
from fleet.provider.base import Hardware, Pacing, Provider, usage_json
from fleet.retry import Backoff
from fleet.stages import remote
from fleet.stages.boot import is_rescue, open_intent
from fleet.stages.context import Connector, ExecSettings
from fleet.stages.registry import STAGES
from fleet.stages.ssh import StepFailed, StepLocked
from fleet.store.base import Event, Lease, OwnedArray, Owner, Store
from fleet.transport.base import CommandResult, Endpoint, KeyExpectation, Transport

log = logging.getLogger(__name__)
_RNG = random.Random()


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
    in_doubt: frozenset[str] = frozenset()  # step keys started but never ended before


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
    remote_usage: Callable[[], Pacing | None] | None = None
    _provider: Provider | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ovh_usage(self) -> dict[str, float] | None:
        """The rollout's OVH calls so far and rate limit waits (None before any call): its one
        provider's, and its workers' (``remote_usage``) when its pipelines run on workers."""
        with self._lock:
            mine = self._provider.usage() if self._provider is not None else None
        return usage_json(mine, self.remote_usage() if self.remote_usage else None)

    @property
    def has_provider(self) -> bool:
        return self._provider is not None or self.provider_factory is not None

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


class Pipeline:
    """Runs one :class:`HostJob`. Create one per host and call :meth:`run`."""

    def __init__(self, job: HostJob, services: Services, journal: Journal) -> None:
        self.job = job
        self.svc = services
        self.journal = journal
        self.host = job.host
        self.done: set[str] = set(job.done_steps)
        self.open_steps: set[str] = set(job.in_doubt)  # started, end not journaled yet
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
        except LeaseLost as exc:  # this process no longer owns the run: touch nothing
            return HostResult(name, "stopped", "lease", message=exc.message)
        try:
            self.emit("host.start", data={"token": lease.token, "mode": self.mode})
            result = self._attempts()
        except LeaseLost as exc:
            result = self._result("stopped", "lease", exc.message)
        finally:
            self._close()
        self._end(result)
        if self.svc.leases:
            self.svc.leases.release(name)
        return result

    def _end(self, result: HostResult) -> None:
        """Journal the host's end while its lease still proves the write; a holder that lost
        its lease records only that, beside the live owner's events (status ignores it)."""
        fields: dict[str, Any] = {"stage": result.stage, "step": result.step}
        if result.failure != "lease":
            data = {"failure": result.failure, "applied": result.applied}
            outcome = {"outcome": result.outcome, **fields}  # and where: status names it
            try:
                self.emit("host.end", excerpt=result.message, data=data, **outcome)
                return
            except LeaseLost as exc:
                result = replace(result, outcome="stopped", failure="lease", message=exc.message)
        fence = self.svc.leases.fence(self.host.name) if self.svc.leases else None
        token = fence.host_token if fence else None
        self.journal.emit(
            "host.lost",
            unfenced=True,
            host=self.host.name,
            outcome="lease lost",
            excerpt=result.message,
            data={"token": token},
            **fields,
        )

    def _take_lease(self) -> Lease:
        """The host's lease; held by another run, waited for up to ``wait_for_leases``, the
        wait journaled (``host.wait``) so that heartbeats and the live view name it."""
        leases, s = self.svc.leases, self.job.settings
        assert leases is not None, "pipelines run under a LeaseKeeper"
        name, owner = self.host.name, self.job.owner
        try:
            return leases.acquire(name, owner, 0.0, self.svc.stop)
        except LeaseHeld as held:
            if s.wait_for_leases <= 0:
                raise
            what = {"what": f"the lease held by {held.owner}", "timeout": s.wait_for_leases}
            self.journal.emit("host.wait", host=name, data=what)
        return leases.acquire(name, owner, s.wait_for_leases, self.svc.stop)

    def _lost(self) -> str | None:
        """Why this pipeline's lease (of the host or of the run) is known lost, if it is."""
        keeper = self.svc.leases
        return keeper.lost(self.host.name) or keeper.run_lost if keeper else None

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
            except ProviderAuthError as exc:
                return self._result("failed", "infrastructure", exc.message)
            except (TransportError, ProviderError) as exc:
                lost = self._lost()
                if lost:
                    raise LeaseLost(self.host.name, lost) from exc
                if self.svc.stop.hard.is_set():
                    return self._result("stopped", None, "cut by abort: " + exc.message)
                self._close()
                left = s.infra_retries - attempt
                self.emit(
                    "host.retry",
                    stage=self.position[0],
                    step=self.position[1],
                    excerpt=exc.message,
                    query_id=getattr(exc, "query_id", None),
                    data={"left": left},
                )
                if left == 0:
                    return self._result("failed", "infrastructure", exc.message)
                # doubling waits with jitter: hosts that failed together retry apart
                delay = Backoff(s.infra_retries + 1, s.infra_retry_delay).wait(attempt + 1, _RNG)
                if self.svc.stop.soft.wait(delay):
                    return self._result("stopped", None, self.svc.stop.reason)
            except FleetError as exc:  # settings and the like: the host ends, journaled
                return self._result("failed", "infrastructure", exc.message)
        raise AssertionError("unreachable")

    def _result(self, outcome: str, failure: str | None, message: str) -> HostResult:
        stage, step = self.position
        return HostResult(self.host.name, outcome, failure, stage, step, message, self.applied)

    # -- stages ----------------------------------------------------------------------------
    def _plan_converged(self) -> bool:
        """Run the plan's own ``converged`` check once, before anything else (not while a
        reboot fleet asked for is under way: which system answers is not known yet)."""
        plan = self.job.plan
        if plan.converged is None or self.done or open_intent(self.host_events()):
            return False
        command = render(plan.converged, self.base_ctx, where="converged", source=plan.source)
        try:
            if not self.run_command(command, 120).ok:
                return False
        except HostKeyMismatch:
            # Another boot generation answers (a rescue an earlier run left, say): not
            # converged. The stages connect again under their own key rules.
            self._close()
            return False
        for stage in plan.stages:
            steps = [s.name for s in stage.steps] or [stage.kind]
            for step in steps:
                self.emit(
                    "step.end",
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
            self.transport = self._open()
            self.svc.stop.track(self.transport)
        return self.transport

    def _open(self) -> Transport:
        """A session with the pinned key of the mode the host is in. A new run assumes the
        installed system; a host an earlier run left in its rescue (a guard refused it there)
        answers with the rescue key fleet pinned then: the run starts from rescue instead."""
        transport = self.svc.connector.open(self.endpoint, KeyExpectation(role=self.mode))
        if self.done or self.mode != "disk" or self.pinned_key("rescue") is None:
            return transport  # (sessions connect lazily, at their first command)
        try:
            transport.run("true", timeout=30)  # connect now: which boot generation answers?
        except HostKeyMismatch:
            transport.close()
            rescue = self._rescue_session()
            if rescue is None:
                raise  # neither key: the installed system's mismatch stands
            self.mode = "rescue"
            self.journal.emit("host.mode", host=self.host.name, data={
                "mode": "rescue", "why": "the host answers with the rescue key fleet pinned"})  # fmt: skip
            return rescue
        return transport

    def _rescue_session(self) -> Transport | None:
        """A session to the rescue system fleet booted and pinned, None when it is not that."""
        rescue = self.svc.connector.open(self.endpoint, KeyExpectation(role="rescue"))
        try:
            if is_rescue(rescue):
                return rescue
        except HostKeyMismatch:
            pass
        rescue.close()
        return None

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
        fence = self.svc.leases.fence(self.host.name) if self.svc.leases else None
        event = self.journal.emit(kind, host=self.host.name, fence=fence, **fields)
        if kind in ("step.start", "step.end"):
            key = f"{event.stage}/{event.step}"
            (self.open_steps.add if kind == "step.start" else self.open_steps.discard)(key)
        return event

    def _host_token(self) -> int:
        """The fencing token of this pipeline's host lease (0 without a lease keeper)."""
        fence = self.svc.leases.fence(self.host.name) if self.svc.leases else None
        return fence.host_token if fence and fence.host_token is not None else 0

    def in_doubt(self, key: str) -> bool:
        return key in self.open_steps

    def run_step(
        self, key: str, command: str, timeout: float, *, sudo: bool = False
    ) -> CommandResult:
        """``command`` under the step's host-side lock (see :mod:`fleet.stages.remote`)."""
        lock = remote.lock_key(self.job.run_id, self.host.name, key)
        wrapped = remote.fenced(command, lock, self._host_token())
        try:
            result = self.run_command(wrapped, timeout, sudo=sudo)
        except CommandTimeout as exc:
            raise CommandTimeout(
                f"{command[:80]!r} still running after {timeout:g} s (it goes on under the "
                "step's lock on the host; a resume waits for it)",
                host=self.host.name,
            ) from exc
        return replace(result, command=command)

    def step_record(self, key: str, wait: float, *, sudo: bool = False) -> remote.Record | None:
        lock = remote.lock_key(self.job.run_id, self.host.name, key)
        probe = remote.probe(lock, wait, self._host_token())
        result = self.run_command(probe, wait + 60, sudo=sudo)
        trouble = remote.lock_trouble(result.exit_code, result.stderr)
        if trouble:
            raise StepLocked(self.host.name, trouble)
        return remote.read_record(result.stdout)

    def output(self, step: str, result: CommandResult) -> None:
        self.journal.output(self.host.name, step, result)

    def run_options(self) -> Mapping[str, Any]:
        return self.svc.store.get_run(self.job.run_id).options

    def host_events(self) -> list[Event]:
        return self.svc.store.events(self.job.run_id, self.host.name)

    def owned_arrays(self) -> list[OwnedArray]:
        return self.svc.store.owned_arrays(self.host.name)

    def record_array(self, array: OwnedArray) -> None:
        self.svc.store.record_array(array)

    def hardware(self) -> Hardware | None:
        service = self.host.service_name
        if not service or not self.svc.has_provider:
            return None
        try:
            provider = self.svc.provider
        except ConfigError:  # no OVH credentials here: the specification is not known
            return None
        return provider.hardware(service)

    def fence(self) -> None:
        if self.svc.leases:
            self.svc.leases.ensure(self.host.name)

    def check_stop(self) -> None:
        lost = self._lost()
        if lost:
            raise LeaseLost(self.host.name, lost)
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
