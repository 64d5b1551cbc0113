"""Showing a rollout: plain timestamped lines, a JSON event stream, command output, summaries.

Every printer is an :class:`fleet.engine.journal.Observer`; the journal calls them as it writes.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from fleet.clock import utc_iso
from fleet.escape import printable
from fleet.store.base import Event
from fleet.transport.base import CommandResult

#: Shown in plain mode only when verbose: step starts, paramiko's lines (``host.ssh``).
_QUIET_KINDS = {"step.start", "host.ssh"}


def describe(e: Event) -> str:
    """One human line for an event, without the timestamp."""
    who = e.host or "-"
    where = "/".join(p for p in (e.stage, e.step) if p)
    if e.kind.startswith("batch."):
        hosts = e.data.get("hosts")
        extra = f" ({len(hosts)} hosts)" if isinstance(hosts, list) else ""
        return f"batch {e.data.get('index')} {e.kind.split('.')[1]}{extra}{ovh_note(e)}"
    if e.kind.startswith("run."):
        tail = f": {e.excerpt}" if e.excerpt else ""
        counts = " ".join(f"{k}={v}" for k, v in e.data.items() if isinstance(v, int))
        line = f"run {e.run_id} {e.kind.split('.')[1]} {e.outcome or ''} {counts}".rstrip()
        return f"{line}{ovh_note(e)}{tail}"
    text = f"{who} {e.kind.split('.')[-1] if e.kind != 'host.wait' else 'waiting for'}"
    if e.kind == "host.wait":
        text += f" {e.data.get('what')}"
    if where:
        text += f" {where}"
    if e.outcome:
        text += f" {e.outcome}"
    if e.exit_code not in (None, 0):
        text += f" (exit {e.exit_code})"
    last = (e.excerpt or "").strip().splitlines()[-1:]
    if last and e.outcome not in ("ok", "applied", "converged"):
        text += ": " + last[0][:200]
    return text


def ovh_note(e: Event) -> str:
    """``; OVH API: N calls, S s waited on the rate limit`` from an event's ``ovh`` data."""
    ovh = e.data.get("ovh")
    if not isinstance(ovh, dict):
        return ""
    return f"; OVH API: {pacing_text(ovh)}"


def pacing_text(ovh: dict[str, Any]) -> str:
    """``N calls, S s waited on the rate limit (R/min)`` (the waits of all hosts summed)."""
    return (
        f"{ovh.get('requests', 0)} calls, {float(ovh.get('rate_limit_wait', 0)):.0f} s waited "
        f"on the rate limit ({float(ovh.get('per_minute', 0)):g}/min)"
    )


class PlainPrinter:
    """One timestamped line per transition, no control characters (for logs, CI, ``| tee``)."""

    def __init__(self, stream: IO[str] | None = None, *, verbose: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose

    def event(self, event: Event) -> None:
        if event.kind in _QUIET_KINDS and not self.verbose:
            return
        self.stream.write(f"{utc_iso(event.at)} {printable(describe(event))}\n")
        self.stream.flush()

    def output(self, host: str, step: str, result: CommandResult) -> None:
        return None


class JsonPrinter:
    """One JSON object per event and line (``--output json``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, event: Event) -> None:
        self.stream.write(json.dumps(event_dict(event), separators=(",", ":")) + "\n")
        self.stream.flush()

    def output(self, host: str, step: str, result: CommandResult) -> None:
        return None


class OutputPrinter:
    """Prints each command's output, a line at a time, prefixed by the host (``fleet run``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, event: Event) -> None:
        if event.kind == "host.end" and event.outcome != "ok":
            text = printable(f"{event.host} FAILED: {event.excerpt or event.outcome}")
            self.stream.write(text + "\n")

    def output(self, host: str, step: str, result: CommandResult) -> None:
        lines = result.stdout.splitlines() + [f"stderr: {x}" for x in result.stderr.splitlines()]
        if lines:
            self.stream.write("".join(f"{printable(host)} {printable(x)}\n" for x in lines))
            self.stream.flush()


def event_dict(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": e.seq, "at": utc_iso(e.at), "run": e.run_id, "kind": e.kind}
    for key in ("host", "stage", "step", "outcome", "exit_code", "excerpt", "query_id"):
        value = getattr(e, key)
        if value is not None:
            out[key] = value
    if e.data:
        out["data"] = e.data
    return out
