"""Heartbeat lines: in plain mode, nothing waits in silence.

Plain output (logs, CI, ``| tee``) prints a line per transition; a reboot, a lease held by
another run, a maintenance window or a long step can then leave it silent for minutes, and an
operator cannot tell a wait from a hang. :class:`Heartbeat` is an observer of the journal that
keeps what each host (and the run itself) is waiting for, and since when; from its own thread
it prints one line for every wait not mentioned for ``interval`` seconds (``output.heartbeat``,
10 s by default), naming what is awaited, for how long so far and up to when::

    2026-11-25T17:24:40.020+00:00 srv-001 still waiting for OVH task 42 (hardReboot): 20s so far, up to 15m
    2026-11-25T17:24:40.020+00:00 run still waiting for the maintenance window: 3h10m so far,
        until 2026-11-26T02:00:00.000+00:00

Beyond :data:`SHOWN` waits at once it prints one line that counts them by what they wait for.
A rollout's own short pauses between its API calls (the OVH rate limit) are named through
``extra``: a callable the wiring gives, returning a line or None.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from fleet.clock import Clock, SystemClock, utc_iso
from fleet.escape import printable
from fleet.reports.model import human_duration
from fleet.store.base import Event
from fleet.transport.base import CommandResult

#: Waits named one line each; beyond, one line counts them.
SHOWN = 5
RUN = ""  # the key of the run's own waits (a window, a bake between batches)
_IDS = re.compile(r"\b\d+\b")


@dataclass
class Pending:
    """What one host (or the run) waits for, since when, and until when if it is known."""

    what: str
    since: datetime
    last_told: datetime
    limit: float | None = None  # seconds, from the wait's start
    until: str | None = None  # an instant, for a window
    note: str | None = None  # the last line paramiko logged meanwhile (``host.ssh``)


class Heartbeat:
    """Journal observer printing a line for every wait left unmentioned for ``interval``."""

    def __init__(
        self,
        interval: float = 10.0,
        stream: IO[str] | None = None,
        *,
        clock: Clock | None = None,
        extra: Callable[[], str | None] | None = None,
    ) -> None:
        self.interval = interval
        self.stream = stream or sys.stdout
        self.clock = clock or SystemClock()
        self.extra = extra
        self.pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- observer --------------------------------------------------------------------------
    def event(self, e: Event) -> None:
        with self._lock:
            self._fold(e)
        if e.kind in ("run.start", "run.resume"):
            self.start()
        elif e.kind == "run.end":
            self.stop()

    def output(self, host: str, step: str, result: CommandResult) -> None:
        return None

    def _fold(self, e: Event) -> None:
        key = e.host or RUN
        if e.kind == "host.wait":
            what, limit = str(e.data.get("what") or "something"), e.data.get("timeout")
            self.pending[key] = Pending(f"waiting for {what}", e.at, e.at, _seconds(limit))
        elif e.kind == "window.wait":
            until = e.data.get("until")
            why = f" ({e.data['reason']})" if e.data.get("reason") else ""
            what = f"waiting for the maintenance window{why}"
            self.pending[key] = Pending(what, e.at, e.at, until=str(until) if until else None)
        elif e.kind == "step.start" and e.host:
            self.pending[key] = Pending(f"running step {e.stage}/{e.step}", e.at, e.at)
        elif e.kind in (
            "host.start", "step.end", "host.end", "host.skip", "host.retry", "window.open"
        ):  # fmt: skip
            self.pending.pop(key, None)
        elif e.kind in ("batch.start", "run.end"):
            self.pending.pop(RUN, None)
        elif e.kind == "host.ssh" and key in self.pending:  # the wait goes on; say why
            self.pending[key].note = e.excerpt

    # -- the beat --------------------------------------------------------------------------
    def due(self, now: datetime) -> list[str]:
        """The lines to print at ``now``; each wait they name counts as told."""
        with self._lock:
            late = [
                (k, p)
                for k, p in self.pending.items()
                if (now - p.last_told).total_seconds() >= self.interval
            ]
            for _, p in late:
                p.last_told = now
        if not late:
            return []
        lines = [_line(k, p, now) for k, p in late] if len(late) <= SHOWN else [_summary(late, now)]
        note = self.extra() if self.extra is not None else None
        return lines + ([note] if note else [])

    def beat(self) -> None:
        now = self.clock.now()
        for line in self.due(now):
            self.stream.write(f"{utc_iso(now)} {printable(line)}\n")
        self.stream.flush()

    def start(self) -> None:
        if self._thread is None and self.interval > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fleet-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        tick = min(1.0, self.interval / 4)
        while not self._stop.wait(tick):
            self.beat()


def _line(key: str, p: Pending, now: datetime) -> str:
    who = key or "run"
    text = f"{who} still {p.what}: {human_duration((now - p.since).total_seconds())} so far"
    if p.limit:
        text += f", up to {human_duration(p.limit)}"
    if p.until:
        text += f", until {p.until}"
    if p.note:
        text += f" (last: {p.note})"
    return text


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _summary(late: list[tuple[str, Pending]], now: datetime) -> str:
    kinds = Counter(_IDS.sub("N", p.what) for _, p in late)
    longest_key, longest = min(late, key=lambda kp: kp[1].since)
    parts = ", ".join(f"{n} {what}" for what, n in kinds.most_common(4))
    more = "" if len(kinds) <= 4 else f", {len(kinds) - 4} other kinds"
    age = human_duration((now - longest.since).total_seconds())
    return (
        f"still busy: {len(late)} hosts ({parts}{more}); "
        f"longest {longest_key or 'run'}: {longest.what}, {age}"
    )
