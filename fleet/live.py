"""The live terminal view of a rollout (rich), shown when standard output is a terminal.

The journal calls :meth:`LiveView.event` under its lock, from every host thread: it only folds
the event into a :class:`~fleet.reports.model.RunProgress` (O(1)) under the view's own lock.
Rendering happens in rich's refresh thread, a few times a second, from a snapshot, so a rollout
of hundreds of hosts does not wait for the terminal.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleet.clock import Clock, SystemClock
from fleet.escape import printable
from fleet.report import pacing_text
from fleet.reports.model import (
    HostTrack,
    RunProgress,
    budget_view,
    estimate_remaining,
    human_duration,
)
from fleet.store.base import Event, RunRecord
from fleet.transport.base import CommandResult

_STYLES = {
    "waiting": "dim",
    "leased": "cyan",
    "running": "bold cyan",
    "done": "green",
    "failed": "bold red",
    "stopped": "yellow",
    "skipped": "yellow",
    "quarantined": "magenta",
}
ERROR_LINES = 3  # last lines of output shown per failing host


def clean(text: str) -> str:
    """Inventory values and remote output may carry escape sequences: they would wreck the
    screen (or rewrite it), so every control character shows escaped."""
    return printable(text)


def last_lines(text: str | None, count: int = ERROR_LINES) -> list[str]:
    lines = [clean(x.rstrip()) for x in (text or "").splitlines() if x.strip()]
    return lines[-count:]


@dataclass(frozen=True)
class Frame:
    """What one refresh draws: a copy of the progress taken under the lock."""

    run: RunRecord
    progress: RunProgress
    now: datetime
    height: int
    ovh: dict[str, Any] | None = None  # OVH calls and rate limit waits so far


class LiveView:
    """A rich live panel: batch, hosts by state, budget, timing, long waits, failures.

    It starts with the run's first event and stops (leaving the last frame on screen) at
    ``run.end``; if the process ends otherwise, the terminal is restored at exit.
    """

    def __init__(
        self,
        run: RunRecord,
        console: Console | None = None,
        *,
        clock: Clock | None = None,
        refresh_per_second: float = 4,
    ) -> None:
        self.run = run
        self.console = console or Console()
        self.clock = clock or SystemClock()
        self.progress = RunProgress(run.hosts)
        #: The rollout's OVH calls and rate-limit waits so far (None: no provider used yet).
        self.ovh_usage: Callable[[], dict[str, float] | None] | None = None
        self._lock = threading.Lock()
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._started = False

    # -- observer --------------------------------------------------------------------------
    def event(self, event: Event) -> None:
        with self._lock:
            self.progress.apply(event)
        if not self._started and event.kind in ("run.start", "run.resume"):
            self.start()
        elif event.kind == "run.end":
            self.stop()

    def output(self, host: str, step: str, result: CommandResult) -> None:
        return None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            atexit.register(self.stop)
            self._live.start()

    def stop(self) -> None:
        if self._started:
            self._started = False
            atexit.unregister(self.stop)
            self._live.stop()  # draws the final frame

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- rendering (rich's refresh thread) -------------------------------------------------
    def snapshot(self) -> Frame:
        with self._lock:
            progress = self.progress.snapshot()
        ovh = self.ovh_usage() if self.ovh_usage is not None else None
        return Frame(self.run, progress, self.clock.now(), self.console.size.height, ovh)

    def _render(self) -> RenderableType:
        return render_frame(self.snapshot())


# -- pure rendering, testable without a terminal --------------------------------------------------


def render_frame(frame: Frame) -> RenderableType:
    p = frame.progress
    parts: list[RenderableType] = [_header(frame), _batch_line(p), _states_line(p)]
    parts.append(_budget_line(frame))
    if frame.ovh is not None:
        parts.append(Text(f"OVH API: {pacing_text(frame.ovh)}"))
    room = max(4, frame.height - 12)
    active = _active_table(frame, room // 2)
    if active is not None:
        parts.append(active)
    failures = _failures(p, max(2, room // 2))
    if failures is not None:
        parts.append(failures)
    if p.state != "running":
        style = "bold green" if p.state == "done" else "bold red"
        parts.append(Text(f"run {p.state}" + (f": {clean(p.reason)}" if p.reason else ""), style))
    return Group(*parts)


def _header(frame: Frame) -> Text:
    p, run = frame.progress, frame.run
    since = p.session_started_at or frame.now
    end = p.ended_at or frame.now
    text = Text()
    text.append(f"fleet rollout {clean(run.id)}", "bold")
    text.append(f"  plan {clean(run.plan_name)} ({clean(run.plan_hash[:12])})")
    text.append(f"  elapsed {human_duration((end - since).total_seconds())}")
    concurrency = int(run.options.get("concurrency") or 1)
    bake = float(run.options.get("bake") or 0.0)
    eta = estimate_remaining(p, frame.now, concurrency, bake)
    if eta is not None:
        text.append(f"  remaining ~{human_duration(eta)}")
    elif p.state == "running":
        text.append("  remaining: estimated after the first host ends")
    return text


def _batch_line(p: RunProgress) -> Text:
    batch = p.current_batch
    if batch is None:
        return Text("batch: none started yet")
    total = len(p.planned_batches) or batch.index
    state = "done" if batch.end else "running"
    session = f" (resume {batch.session - 1})" if batch.session > 1 else ""
    count = f"{len(batch.hosts)} host" + ("s" if len(batch.hosts) != 1 else "")
    return Text(f"batch {batch.index} of {total}{session}: {count}, {state}")


def _states_line(p: RunProgress) -> Text:
    counts = p.counts()
    text = Text("hosts: ")
    for state, n in counts.items():
        if n or state in ("waiting", "running", "done", "failed"):
            text.append(f"{state} {n}", _STYLES.get(state, ""))
            text.append("  ")
    stages: dict[str, int] = {}
    for t in p.hosts.values():
        if t.state == "running" and t.stage:
            stages[t.stage] = stages.get(t.stage, 0) + 1
    if stages:
        running = ", ".join(f"stage {clean(k)} {v}" for k, v in stages.items())
        text.append(f"(running: {running})")
    return text


def _budget_line(frame: Frame) -> Text:
    view = budget_view(frame.run.options, frame.progress)
    return Text("budget: " + view.line(), "bold red" if view.spent else "")


def _active_table(frame: Frame, rows: int) -> Table | None:
    active = [t for t in frame.progress.hosts.values() if t.state in ("leased", "running")]
    if not active:
        return None
    active.sort(key=lambda t: (t.wait is None, t.started or frame.now))  # waits and oldest first
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("host", "state", "stage/step", "for", "waiting for"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for t in active[:rows]:
        table.add_row(*_active_row(t, frame.now))
    if len(active) > rows:
        table.add_row(Text(f"... {len(active) - rows} more", "dim"), "", "", "", "")
    return table


def _active_row(t: HostTrack, now: datetime) -> list[Any]:
    since = t.open_span.start if t.open_span else t.started or now
    where = f"{t.stage}/{t.step}" if t.stage else ""
    waiting = ""
    if t.wait is not None:
        waiting = f"{clean(t.wait.what)} ({human_duration((now - t.wait.since).total_seconds())})"
    state = f"running stage {clean(t.stage)}" if t.state == "running" and t.stage else t.state
    return [
        Text(clean(t.name)),
        Text(state, _STYLES.get(t.state, "")),
        Text(clean(where)),
        human_duration((now - since).total_seconds()),
        Text(waiting, "yellow"),
    ]


def _failures(p: RunProgress, rows: int) -> Group | None:
    failed = [t for t in p.hosts.values() if t.state == "failed"]
    if not failed:
        return None
    failed.sort(key=lambda t: t.ended.timestamp() if t.ended else 0.0)
    lines: list[RenderableType] = [Text("failures:", "bold red")]
    per_host = ERROR_LINES + 1
    shown = failed[-max(1, rows // per_host) :]
    if len(shown) < len(failed):
        lines.append(Text(f"  ({len(failed) - len(shown)} earlier failures not shown)", "dim"))
    for t in shown:
        head = Text(f"  {clean(t.name)}", "bold")
        head.append(f" {clean(t.where)}" if t.where else "")
        head.append(f" ({t.failure or 'failed'})")
        if t.output and t.message:
            head.append(f": {clean(t.message.strip().splitlines()[-1])}", "dim")
        lines.append(head)
        lines.extend(Text(f"    | {line}") for line in last_lines(t.output or t.message))
    return Group(*lines)
