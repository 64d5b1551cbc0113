"""A run's journal folded into one picture per host: the model behind the live view and reports.

:class:`RunProgress` takes events one at a time and does O(1) work for each, so the live view can
feed it from inside the journal's lock; a report replays a whole journal through the same class,
so what the terminal showed and what the report says can never disagree.

Host states: ``waiting`` (not started), ``leased`` (lease taken, no step yet), ``running`` (a
step is under way; ``stage``/``step`` say which), ``done``, ``failed``, ``stopped`` (left
unfinished by a halt or abort; resumable), ``skipped`` (lease held elsewhere) and
``quarantined`` (skipped because an earlier rollout failed on it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from fleet.store.base import Event

HOST_STATES = (
    "waiting",
    "leased",
    "running",
    "done",
    "failed",
    "stopped",
    "skipped",
    "quarantined",
)
_END_STATES = {"ok": "done", "failed": "failed", "stopped": "stopped"}
#: Options of a run that a report may show (the run record also keeps the plan and host records).
OPTION_KEYS = ("batches", "by", "concurrency", "max_failures", "max_ratio", "bake", "gate")


@dataclass
class Span:
    """One step of one host: a bar of the timeline. ``outcome`` None while it runs;
    ``interrupted`` when the pipeline left it without an end (infrastructure retry, crash)."""

    stage: str
    step: str
    start: datetime
    end: datetime | None = None
    outcome: str | None = None
    batch: int | None = None
    exit_code: int | None = None
    excerpt: str | None = None
    output: dict[str, Any] | None = None  # the kept tail of stdout/stderr (fleet.stages.output)

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.step}"


@dataclass
class Wait:
    """Something a host waits for (an OVH task, SSH coming back), and since when."""

    what: str
    since: datetime


@dataclass
class HostTrack:
    name: str
    state: str = "waiting"
    batch: int | None = None
    stage: str | None = None
    step: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    duration: float = 0.0  # seconds between host.start and host.end, over every attempt
    spans: list[Span] = field(default_factory=list)
    wait: Wait | None = None
    failure: str | None = None  # payload, infrastructure, hostkey, lease, quarantine
    message: str | None = None  # the last error text seen for this host
    output: str | None = None  # the output excerpt of its last failed step or attempt
    where: str | None = None  # stage/step of the failure
    retries: int = 0
    facts: dict[str, Any] = field(default_factory=dict)  # what its python stages decided

    @property
    def open_span(self) -> Span | None:
        last = self.spans[-1] if self.spans else None
        return last if last is not None and last.end is None else None


@dataclass
class BatchMark:
    """A batch as it ran. ``number`` counts batches over the whole journal (a resume restarts
    the rollout's own ``index`` at 1); ``session`` is 1 for the first run, 2 after one resume..."""

    number: int
    index: int
    session: int
    hosts: list[str]
    start: datetime
    end: datetime | None = None


@dataclass
class SessionMark:
    """One process's go at the run: ``run.start`` or ``run.resume``, then ``run.end`` (how it
    ended, and why) unless the process died."""

    number: int
    kind: str  # "start" or "resume"
    start: datetime
    end: datetime | None = None
    outcome: str | None = None
    reason: str | None = None


class RunProgress:
    """Where every host of a run stands, updated one event at a time."""

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        self.hosts: dict[str, HostTrack] = {h: HostTrack(h) for h in hosts}
        self.batches: list[BatchMark] = []
        self.gates: list[Event] = []
        self.state = "running"
        self.reason: str | None = None
        self.started_at: datetime | None = None
        self.session_started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.last_at: datetime | None = None
        self.sessions = 0
        self.session_marks: list[SessionMark] = []
        self.planned_batches: list[int] = []  # batch sizes of the current session
        #: Counted per session, as the rollout counts them against its budget.
        self.session_failed = 0
        self.session_started = 0
        #: host durations (s) of ended hosts, for the estimate of what remains
        self.durations: list[float] = []
        self._handlers: dict[str, Callable[[Event], None]] = {
            "run.start": self._run_start,
            "run.resume": self._run_start,
            "run.end": self._run_end,
            "batch.start": self._batch_start,
            "batch.end": self._batch_end,
            "host.start": self._host_start,
            "host.end": self._host_end,
            "host.skip": self._host_skip,
            "host.wait": self._host_wait,
            "host.retry": self._host_retry,
            "step.start": self._step_start,
            "step.end": self._step_end,
            "step.retry": self._step_retry,
            "gate": self.gates.append,
        }

    @classmethod
    def replay(cls, hosts: Iterable[str], events: Iterable[Event]) -> RunProgress:
        progress = cls(hosts)
        for event in events:
            progress.apply(event)
        return progress

    def apply(self, e: Event) -> None:
        self.last_at = e.at
        handler = self._handlers.get(e.kind)
        if handler is not None:
            handler(e)

    def track(self, name: str) -> HostTrack:
        found = self.hosts.get(name)
        if found is None:
            found = self.hosts[name] = HostTrack(name)
        return found

    @property
    def current_batch(self) -> BatchMark | None:
        return self.batches[-1] if self.batches else None

    def snapshot(self) -> RunProgress:
        """A copy for reading elsewhere (the live view's refresh thread): cheap, O(hosts); each
        host keeps only its last span. Do not :meth:`apply` events to it."""
        other = copy.copy(self)
        other.hosts = {
            n: replace(t, spans=[replace(s) for s in t.spans[-1:]]) for n, t in self.hosts.items()
        }
        other.batches = [replace(b) for b in self.batches[-1:]]
        other.durations = list(self.durations)
        other.planned_batches = list(self.planned_batches)
        other.gates = list(self.gates)
        other.session_marks = [replace(m) for m in self.session_marks[-1:]]
        return other

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(HOST_STATES, 0)
        for t in self.hosts.values():
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def failed_hosts(self) -> list[HostTrack]:
        return [t for t in self.hosts.values() if t.state == "failed"]

    # -- run and batches -------------------------------------------------------------------
    def _run_start(self, e: Event) -> None:
        self.sessions += 1
        kind = "resume" if e.kind == "run.resume" else "start"
        self.session_marks.append(SessionMark(self.sessions, kind, e.at))
        self.state, self.reason, self.ended_at = "running", None, None
        self.started_at = self.started_at or e.at
        self.session_started_at = e.at
        self.session_failed = self.session_started = 0
        sizes = e.data.get("batches")
        self.planned_batches = [int(n) for n in sizes] if isinstance(sizes, list) else []
        if e.kind == "run.resume":
            for t in self.hosts.values():
                if t.state != "done":
                    t.state, t.wait = "waiting", None

    def _run_end(self, e: Event) -> None:
        self.state = e.outcome or "ended"
        self.reason = e.excerpt
        self.ended_at = e.at
        if self.session_marks and self.session_marks[-1].end is None:
            mark = self.session_marks[-1]
            mark.end, mark.outcome, mark.reason = e.at, e.outcome, e.excerpt

    def _batch_start(self, e: Event) -> None:
        hosts = [str(h) for h in e.data.get("hosts") or []]
        mark = BatchMark(
            len(self.batches) + 1, int(e.data.get("index") or 0), self.sessions, hosts, e.at
        )
        self.batches.append(mark)
        for name in hosts:
            self.track(name).batch = mark.number

    def _batch_end(self, e: Event) -> None:
        if self.batches:
            self.batches[-1].end = e.at

    # -- hosts -----------------------------------------------------------------------------
    def _host_start(self, e: Event) -> None:
        t = self.track(e.host or "")
        t.state, t.started, t.ended, t.wait = "leased", e.at, None, None
        t.stage = t.step = None
        self.session_started += 1

    def _host_end(self, e: Event) -> None:
        t = self.track(e.host or "")
        _close_open(t, e.at, "interrupted")
        t.state = _END_STATES.get(e.outcome or "", e.outcome or "ended")
        t.ended, t.wait = e.at, None
        if t.started is not None:
            seconds = (e.at - t.started).total_seconds()
            t.duration += seconds
            if e.outcome in ("ok", "failed"):
                self.durations.append(seconds)
        if e.outcome == "failed":
            self.session_failed += 1
        if e.outcome != "ok":
            t.failure = _text(e.data.get("failure")) or t.failure
            t.message = e.excerpt or t.message
            t.where = "/".join(x for x in (e.stage, e.step) if x) or t.where
        else:
            t.stage = t.step = None

    def _host_skip(self, e: Event) -> None:
        t = self.track(e.host or "")
        t.state = "quarantined" if e.outcome == "quarantine" else "skipped"
        t.failure, t.message, t.wait = e.outcome, e.excerpt, None

    def _host_wait(self, e: Event) -> None:
        t = self.track(e.host or "")
        t.wait = Wait(str(e.data.get("what") or "something"), e.at)

    def _host_retry(self, e: Event) -> None:
        t = self.track(e.host or "")
        _close_open(t, e.at, "interrupted")
        t.retries += 1
        t.message, t.wait = e.excerpt, None

    # -- steps -----------------------------------------------------------------------------
    def _step_start(self, e: Event) -> None:
        t = self.track(e.host or "")
        _close_open(t, e.at, "interrupted")
        t.state, t.stage, t.step, t.wait = "running", e.stage, e.step, None
        t.spans.append(Span(e.stage or "", e.step or "", e.at, batch=t.batch))

    def _step_end(self, e: Event) -> None:
        t = self.track(e.host or "")
        span = t.open_span
        if span is None or (span.stage, span.step) != (e.stage or "", e.step or ""):
            _close_open(t, e.at, "interrupted")
            span = Span(e.stage or "", e.step or "", e.at, batch=t.batch)
            t.spans.append(span)
        span.end, span.outcome = e.at, e.outcome
        span.exit_code, span.excerpt = e.exit_code, e.excerpt
        output = e.data.get("output")
        span.output = output if isinstance(output, dict) else None
        t.wait = None
        if isinstance(e.data.get("facts"), dict):
            t.facts.update(e.data["facts"])
        if e.outcome == "failed":
            t.message, t.where = e.excerpt or t.message, span.key
            t.output = e.excerpt or t.output

    def _step_retry(self, e: Event) -> None:
        t = self.track(e.host or "")
        t.retries += 1
        t.message = e.excerpt or t.message
        t.output = e.excerpt or t.output


def _close_open(t: HostTrack, at: datetime, outcome: str) -> None:
    span = t.open_span
    if span is not None:
        span.end, span.outcome = at, outcome


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def human_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``: short enough for a status line."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# -- estimates -----------------------------------------------------------------------------------


def estimate_remaining(
    progress: RunProgress, now: datetime, concurrency: int, bake: float = 0.0
) -> float | None:
    """Seconds until the run ends if hosts keep taking their average time so far; None before
    any host ended. Batch-aware: later batches start only when the current one is done."""
    if not progress.durations or progress.state != "running":
        return None
    mean = sum(progress.durations) / len(progress.durations)
    concurrency = max(1, concurrency)
    batch = progress.current_batch
    in_batch = set(batch.hosts) if batch else set()
    waiting = in_batch_waiting = 0
    in_flight: list[float] = []
    for t in progress.hosts.values():
        if t.state in ("leased", "running") and t.started is not None:
            in_flight.append(max(0.0, mean - (now - t.started).total_seconds()))
        elif t.state == "waiting":
            waiting += 1
            in_batch_waiting += t.name in in_batch
    tail = math.ceil(in_batch_waiting / concurrency) * mean + max(in_flight, default=0.0)
    later = _later_batches(progress, waiting - in_batch_waiting)
    return tail + sum(math.ceil(n / concurrency) * mean + bake for n in later)


def _later_batches(progress: RunProgress, hosts_left: int) -> list[int]:
    """Sizes of the batches not started yet in this session (from run.start's plan)."""
    batch = progress.current_batch
    done = batch.index if batch and batch.session == progress.sessions else 0
    sizes = progress.planned_batches[done:]
    if not sizes and hosts_left:
        return [hosts_left]
    return sizes


# -- the failure budget --------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetView:
    """The failure budget of the current session as the rollout counts it."""

    failed: int
    started: int
    allowed: str
    left: int | None  # failures still tolerated before the rollout halts; None when unlimited
    spent: bool

    def line(self) -> str:
        text = f"{self.failed} failed of {self.started} started; allowed {self.allowed}"
        if self.spent:
            return text + "; spent"
        return text + (f"; {self.left} more tolerated" if self.left is not None else "")


def budget_view(options: dict[str, Any], progress: RunProgress) -> BudgetView:
    from fleet.engine.rollout import Budget

    max_failures = options.get("max_failures")
    max_ratio = options.get("max_ratio")
    budget = Budget(
        int(max_failures) if max_failures is not None else None,
        float(max_ratio) if max_ratio is not None else None,
    )
    failed, started = progress.session_failed, progress.session_started
    lefts = []
    if budget.max_failures is not None:
        lefts.append(budget.max_failures - failed)
    if budget.max_ratio is not None:
        lefts.append(math.floor(budget.max_ratio * max(started, 1)) - failed)
    left = max(0, min(lefts)) if lefts else None
    return BudgetView(failed, started, budget.describe(), left, budget.spent(failed, started))
