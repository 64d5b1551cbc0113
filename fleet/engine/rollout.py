"""The rollout controller: batches, the fleet-wide failure budget, gates, halt and resume.

The controller is the one place that decides which host starts when. Pipelines
(:mod:`fleet.engine.pipeline`) run in a bounded thread pool and report through the journal; the
controller counts their failures against the budget and stops starting hosts when it is spent.
Where a host's pipeline runs is the rollout's *host runner*: in this process by default, on
Celery workers when the command line hands it :class:`fleet.workers.WorkerDispatch`.

A halted rollout stays halted until a person acts (``fleet resume RUN`` or ``fleet abort RUN``).
``fleet halt`` sets a global switch that every rollout checks before every batch and every host,
and hears within about a second whatever it is doing (:mod:`fleet.engine.halts`).
"""

from __future__ import annotations

import concurrent.futures as cf
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fleet.clock import Clock, SystemClock
from fleet.engine.batching import check_topology, make_batches, parse_sizes
from fleet.engine.collector import rollout_collector
from fleet.engine.gil import switch_interval_for
from fleet.engine.halts import HaltWatch, halt_reason
from fleet.engine.journal import Journal, progress_of
from fleet.engine.pipeline import HostJob, HostResult, Services, run_host
from fleet.errors import LeaseLost, UsageError
from fleet.inventory import Host
from fleet.plan import Plan, render_for_host
from fleet.stages.context import ExecSettings
from fleet.store.base import Event, RunRecord

#: Runs one host's job to its end and returns how it ended (a failure is a value): in this
#: process (:func:`fleet.engine.pipeline.run_host`), or elsewhere (a worker) and waits for it.
HostRunner = Callable[[HostJob], HostResult]


@dataclass(frozen=True)
class Budget:
    """Halt when more than ``max_failures`` hosts failed, or the failed share of started hosts
    exceeds ``max_ratio``. Counted fleet-wide, across batches."""

    max_failures: int | None = None
    max_ratio: float | None = None

    def spent(self, failed: int, started: int) -> bool:
        if self.max_failures is not None and failed > self.max_failures:
            return True
        return bool(self.max_ratio is not None and started and failed / started > self.max_ratio)

    def describe(self) -> str:
        parts = []
        if self.max_failures is not None:
            parts.append(f"at most {self.max_failures} failed hosts")
        if self.max_ratio is not None:
            parts.append(f"at most {self.max_ratio:.0%} of started hosts failed")
        return " and ".join(parts) or "unlimited"


@dataclass(frozen=True)
class RolloutOptions:
    batches: str = "1,100%"
    by: str | None = None
    concurrency: int = 20
    max_failures: int | None = 0
    max_ratio: float | None = None
    bake: float = 0.0
    gate: str | None = None
    serial_by: str | None = None
    max_per: int | None = None

    def __post_init__(self) -> None:
        parse_sizes(self.batches)
        check_topology(self.by, self.serial_by, self.max_per)
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.max_failures is not None and self.max_failures < 0:
            raise UsageError("--max-failures must be 0 or more")
        if self.max_ratio is not None and not 0 <= self.max_ratio <= 1:
            raise UsageError("--max-failure-ratio must be between 0 and 1")
        if self.bake < 0:
            raise UsageError("--bake must be 0 or more")

    @property
    def budget(self) -> Budget:
        return Budget(self.max_failures, self.max_ratio)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RolloutResult:
    run_id: str
    state: str
    reason: str | None
    results: dict[str, HostResult] = field(default_factory=dict)
    #: This session resumed the run (earlier sessions may have finished hosts).
    resumed: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results.values() if r.outcome == outcome)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 host failures (or every host skipped), 2 halted or aborted, 4 lease
        conflicts or this process lost the run (see docs)."""
        if self.state == "lost":
            return 4
        if self.state in ("halted", "aborted"):
            return 2
        if self.state == "failed" or self.count("failed"):
            return 1
        if any(r.failure == "lease" for r in self.results.values()):
            return 4
        return 0


@dataclass(frozen=True)
class Resumption:
    """What the journal says about a run's hosts."""

    finished: frozenset[str]
    done_steps: dict[str, frozenset[str]]
    modes: dict[str, str]
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_doubt: dict[str, frozenset[str]] = field(default_factory=dict)  # started, never ended


def read_resumption(events: list[Event]) -> Resumption:
    progress = progress_of(events)
    finished = frozenset(h for h, steps in progress.items() if steps.get("") == "ok")
    done = {
        h: frozenset(k for k, v in steps.items() if k and v in ("converged", "applied"))
        for h, steps in progress.items()
    }
    modes: dict[str, str] = {}
    facts: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.kind in ("step.end", "host.mode") and e.host and "mode" in e.data:
            modes[e.host] = str(e.data["mode"])
        if e.kind == "step.end" and e.host and isinstance(e.data.get("facts"), dict):
            facts.setdefault(e.host, {}).update(e.data["facts"])
    in_doubt = {
        h: frozenset(k for k, v in steps.items() if k and v == "started")
        for h, steps in progress.items()
    }
    return Resumption(finished, done, modes, facts, in_doubt)


class Rollout:
    """Run (or resume) one rollout. Build it, then call :meth:`execute`."""

    def __init__(
        self,
        run: RunRecord,
        plan: Plan,
        hosts: list[Host],
        options: RolloutOptions,
        services: Services,
        journal: Journal,
        settings: ExecSettings,
        *,
        clock: Clock | None = None,
        resumption: Resumption | None = None,
        retry_quarantined: bool = False,
        runner: HostRunner | None = None,
    ) -> None:
        self.run = run
        self.plan = plan
        self.hosts = hosts
        self.options = options
        self.svc = services
        self.journal = journal
        self.settings = settings
        self.clock = clock or SystemClock()
        self.resumption = resumption or Resumption(frozenset(), {}, {})
        self.retry_quarantined = retry_quarantined
        #: Run quarantined hosts too, leaving them quarantined (``fleet run`` for diagnosis).
        self.include_quarantined = False
        self.runner: HostRunner = runner or self._in_process
        for host in hosts:  # every placeholder must resolve before any host is contacted
            render_for_host(plan, host)
        self.result = RolloutResult(run.id, "running", None, resumed=resumption is not None)
        self._lock = threading.Lock()
        self._failed = 0
        self._started = 0
        #: Called before each batch starts; may block (waiting for a maintenance window) and
        #: returns False to start nothing more (the run halts with ``stop.reason``).
        self.before_batch: Callable[[int, list[Host]], bool] | None = None
        #: Called before each host starts; returns False to leave the host for later.
        self.before_host: Callable[[Host], bool] | None = None

    # -- stop conditions -------------------------------------------------------------------
    def _halted_globally(self) -> str | None:
        halt = self.svc.store.halt_state()
        return None if halt is None else halt_reason(halt)

    def _may_start(self) -> bool:
        if self.svc.stop.soft.is_set():
            return False
        reason = self._halted_globally()
        if reason:
            self.svc.stop.request(reason)
            return False
        return True

    # -- hosts -----------------------------------------------------------------------------
    def _job(self, host: Host) -> HostJob:
        r = self.resumption
        return HostJob(
            host,
            self.plan,
            self.run.id,
            self.run.owner,
            self.settings,
            r.done_steps.get(host.name, frozenset()),
            r.modes.get(host.name, "disk"),
            dict(r.facts.get(host.name, {})),
            r.in_doubt.get(host.name, frozenset()),
        )

    def _one(self, host: Host) -> HostResult:
        if not self._may_start() or (self.before_host and not self.before_host(host)):
            return HostResult(host.name, "stopped", message=self.svc.stop.reason or "not started")
        with self._lock:
            self._started += 1
        result = self.runner(self._job(host))
        if result.counts_against_budget:
            self._count_failure(result)
        return result

    def _in_process(self, job: HostJob) -> HostResult:
        return run_host(job, self.svc, self.journal)

    def _count_failure(self, result: HostResult) -> None:
        self.svc.store.quarantine(
            result.host, self.run.id, result.message or "failed", fence=self.journal.fence
        )
        with self._lock:
            self._failed += 1
            spent = self.options.budget.spent(self._failed, self._started)
            failed, started = self._failed, self._started
        if spent:
            self.svc.stop.request(
                f"failure budget spent: {failed} of {started} started hosts failed "
                f"(allowed: {self.options.budget.describe()})"
            )

    def _skip_quarantined(self, batch: list[Host]) -> list[Host]:
        entries = {q.host: q for q in self.svc.store.quarantined()}
        keep = []
        for host in batch:
            q = entries.get(host.name)
            if q and self.include_quarantined:
                keep.append(host)  # looked at, not released: the quarantine stays
                continue
            if q and not (self.retry_quarantined and q.run_id == self.run.id):
                msg = f"quarantined since {q.at:%Y-%m-%d %H:%M} UTC by run {q.run_id}: {q.reason}"
                self.journal.emit("host.skip", host=host.name, outcome="quarantine", excerpt=msg)
                self.result.results[host.name] = HostResult(
                    host.name, "skipped", "quarantine", message=msg
                )
            else:
                if q:
                    self.svc.store.clear_quarantine(host.name, f"resume of {self.run.id}")
                keep.append(host)
        return keep

    # -- batches ---------------------------------------------------------------------------
    def _batches(self) -> list[list[Host]]:
        """The run's batches, computed over all its hosts (stable across resumes), minus the
        hosts that already finished."""
        o = self.options
        batches = make_batches(
            self.hosts, o.batches, o.by, serial_by=o.serial_by, max_per=o.max_per
        )
        left = [[h for h in b if h.name not in self.resumption.finished] for b in batches]
        return [b for b in left if b]

    def _run_batch(self, pool: cf.ThreadPoolExecutor, index: int, batch: list[Host]) -> None:
        self.journal.emit("batch.start", data={"index": index, "hosts": [h.name for h in batch]})
        futures = {pool.submit(self._one, h): h for h in self._skip_quarantined(batch)}
        pending = set(futures)
        while pending:  # short waits keep the main thread responsive to Ctrl-C
            done, pending = cf.wait(pending, timeout=0.5)
            for f in done:
                r = f.result()
                self.result.results[r.host] = r
        self.journal.emit("batch.end", data={"index": index, **self._pacing()})

    def _between_batches(self, index: int) -> None:
        if self.options.bake and self.svc.stop.soft.wait(self.options.bake):
            return
        if self.options.gate and not self.svc.stop.soft.is_set():
            self._gate(index)

    def _gate(self, index: int) -> None:
        proc = subprocess.run(
            self.options.gate or "",
            shell=True,
            capture_output=True,
            text=True,
            check=False,
            env={"FLEET_RUN_ID": self.run.id, "FLEET_BATCH": str(index), "PATH": "/usr/bin:/bin"},
        )
        self.journal.emit(
            "gate",
            outcome="ok" if proc.returncode == 0 else "failed",
            exit_code=proc.returncode,
            excerpt=(proc.stderr + proc.stdout)[-2000:] or None,
            data={"batch": index},
        )
        if proc.returncode != 0:
            self.svc.stop.request(
                f"health gate failed after batch {index} (exit {proc.returncode})"
            )

    # -- the whole run ---------------------------------------------------------------------
    def execute(self) -> RolloutResult:
        batches = self._batches()
        try:
            self.journal.emit(
                "run.start" if not self.resumption.done_steps else "run.resume",
                data={"batches": [len(b) for b in batches], "plan_hash": self.plan.hash},
            )
            with (
                rollout_collector(),
                HaltWatch(self.svc.store, self.svc.stop, self.journal),
                switch_interval_for(self.options.concurrency),
                cf.ThreadPoolExecutor(
                    self.options.concurrency, thread_name_prefix="fleet-host"
                ) as pool,
            ):
                self._run_batches(pool, batches)
        except LeaseLost as exc:  # the run was taken over: stop everything, write nothing
            self.svc.stop.request(exc.message, hard=True)
            self.result.state, self.result.reason = "lost", exc.message
            return self.result
        return self._finish()

    def _run_batches(self, pool: cf.ThreadPoolExecutor, batches: list[list[Host]]) -> None:
        for index, batch in enumerate(batches, start=1):
            if not self._may_start():
                break
            if self.before_batch and not self.before_batch(index, batch):
                break
            if not self._may_start():
                break
            self._run_batch(pool, index, batch)
            if index < len(batches):
                self._between_batches(index)

    def _finish(self) -> RolloutResult:
        for h in self.hosts:  # hosts no batch reached are unfinished too
            if h.name not in self.resumption.finished and h.name not in self.result.results:
                self.result.results[h.name] = HostResult(h.name, "stopped", message="not started")
        state, reason = self._outcome()
        counts = {o: self.result.count(o) for o in ("ok", "failed", "stopped", "skipped")}
        try:
            self.svc.store.set_run_state(self.run.id, state, reason, fence=self.journal.fence)
            data = {**counts, **self._pacing()}
            self.journal.emit("run.end", outcome=state, excerpt=reason, data=data)
        except LeaseLost as exc:  # another process owns the run now: leave its record alone
            state, reason = "lost", exc.message
        self.result.state, self.result.reason = state, reason
        return self.result

    def _pacing(self) -> dict[str, Any]:
        """``{"ovh": ...}``: the OVH calls so far and the rate limit's waits, when any."""
        usage = self.svc.ovh_usage()
        return {"ovh": usage} if usage is not None else {}

    def _outcome(self) -> tuple[str, str | None]:
        stop, results = self.svc.stop, self.result.results.values()
        unfinished = [r for r in results if r.outcome == "stopped"]
        lost = [r for r in unfinished if r.failure == "lease"]
        if stop.hard.is_set():
            return "aborted", stop.reason
        if stop.soft.is_set() and unfinished:
            return "halted", stop.reason
        if self.result.count("failed"):
            return "failed", f"{self.result.count('failed')} host(s) failed"
        if lost:
            return "halted", f"{len(lost)} host(s) lost their lease: {lost[0].message}"
        skipped = [r for r in results if r.outcome == "skipped" and r.failure == "quarantine"]
        if skipped and len(skipped) == len(self.result.results):
            return "failed", f"every host was skipped: {len(skipped)} quarantined"
        return "done", None
