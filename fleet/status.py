"""Where a run stands, derived from its record and journal (``fleet status [RUN]``).

A run recorded ``running`` whose owner is dead (see :mod:`fleet.engine.owners`) shows as
``interrupted``, with the command that resumes it, and so do the hosts it left running: a host
never shows ``running`` once its holder died or lost its lease.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleet.engine.owners import dead_because
from fleet.errors import UsageError
from fleet.inventory.problems import suggest
from fleet.reports.records import host_records
from fleet.store.base import Event, RunLease, RunRecord, Store


def run_state(run: RunRecord, now: datetime) -> tuple[str, str | None]:
    """The run's state as an operator should read it, and its reason."""
    if run.state != "running":
        return run.state, run.reason
    lease = run.lease or RunLease(run.id, run.owner, 0, datetime.max.replace(tzinfo=now.tzinfo))
    why = dead_because(lease, now)
    if why is None:
        return run.state, run.reason
    return "interrupted", f"owner {run.owner} died ({why}); `fleet resume {run.id}` continues it"


def _host_rows(
    run_hosts: tuple[str, ...], events: list[Event], interrupted: bool = False
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {
        h: {"host": h, "state": "waiting", "where": None, "message": None, "token": None}
        for h in run_hosts
    }
    for e in events:
        row = rows.get(e.host or "")
        if row is not None:
            _apply(row, e)
    for row in rows.values():
        del row["token"]
        if interrupted and row["state"] == "running":
            row["state"] = "interrupted"
    return list(rows.values())


def _apply(row: dict[str, Any], e: Event) -> None:
    """Move one host's row on by one of its events."""
    if e.kind == "host.start":
        row.update(state="running", message=None, token=e.data.get("token"))
    elif e.kind == "step.start":
        row.update(where=f"{e.stage}/{e.step}")
    elif e.kind == "host.wait":
        row.update(message=f"waiting for {e.data.get('what')}")
    elif e.kind == "step.end" and e.outcome == "failed":
        row.update(message=e.excerpt)
    elif e.kind == "host.lost" and e.data.get("token") == row["token"]:
        row.update(state="lease lost", message=e.excerpt)  # not re-run by the owner since
    elif e.kind in ("host.end", "host.skip"):
        state = e.outcome if e.kind == "host.end" else f"skipped ({e.outcome})"
        row.update(state=state, message=e.excerpt or row["message"])
        if e.outcome == "ok":
            row.update(where=None, message=None)


def run_status(store: Store, run_id: str, now: datetime) -> dict[str, Any]:
    run = store.get_run(run_id)
    events = store.events(run_id)
    state, reason = run_state(run, now)
    return {
        "id": run.id,
        "state": state,
        "reason": reason,
        "plan": run.plan_name,
        "plan_hash": run.plan_hash,
        "owner": str(run.owner),
        "hosts": _host_rows(run.hosts, events, state == "interrupted"),
    }


def host_steps(store: Store, run_id: str, host: str) -> dict[str, Any]:
    """One host of a run: every step it ran, in order, with its outcome and kept output, and
    its record (:mod:`fleet.reports.records`: the guard's decisions, the identities found).

    Raises:
        UsageError: the run has no such host.
    """
    run = store.get_run(run_id)
    if host not in run.hosts:
        raise UsageError(f"run {run_id} has no host {host!r}", hint=suggest(host, run.hosts))
    steps: list[dict[str, Any]] = []
    state = "waiting"
    events = store.events(run_id, host)
    for e in events:
        if e.kind == "step.end":
            step: dict[str, Any] = {"step": f"{e.stage}/{e.step}", "outcome": e.outcome}
            if e.exit_code not in (None, 0):
                step["exit_code"] = e.exit_code
            if isinstance(e.data.get("duration"), int | float):
                step["duration"] = e.data["duration"]
            if e.excerpt:
                step["excerpt"] = e.excerpt
            if isinstance(e.data.get("output"), dict):
                step["output"] = e.data["output"]
            steps.append(step)
        elif e.kind in ("host.end", "host.skip", "host.start"):
            state = e.outcome or ("running" if e.kind == "host.start" else state)
    record = host_records(events).get(host, {})
    return {"run": run_id, "host": host, "state": state, "steps": steps, "record": record}
