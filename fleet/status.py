"""Where a run stands, derived from its journal (``fleet status RUN``)."""

from __future__ import annotations

from typing import Any

from fleet.errors import UsageError
from fleet.inventory.select import _suggest
from fleet.store.base import Event, Store


def _host_rows(run_hosts: tuple[str, ...], events: list[Event]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {
        h: {"host": h, "state": "waiting", "where": None, "message": None} for h in run_hosts
    }
    for e in events:
        row = rows.get(e.host or "")
        if row is None:
            continue
        if e.kind == "host.start":
            row.update(state="running", message=None)
        elif e.kind == "step.start":
            row.update(where=f"{e.stage}/{e.step}")
        elif e.kind == "host.wait":
            row.update(message=f"waiting for {e.data.get('what')}")
        elif e.kind == "step.end" and e.outcome == "failed":
            row.update(message=e.excerpt)
        elif e.kind in ("host.end", "host.skip"):
            state = e.outcome if e.kind == "host.end" else f"skipped ({e.outcome})"
            row.update(state=state, message=e.excerpt or row["message"])
            if e.outcome == "ok":
                row.update(where=None, message=None)
    return list(rows.values())


def run_status(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    events = store.events(run_id)
    return {
        "id": run.id,
        "state": run.state,
        "reason": run.reason,
        "plan": run.plan_name,
        "plan_hash": run.plan_hash,
        "owner": str(run.owner),
        "hosts": _host_rows(run.hosts, events),
    }


def host_steps(store: Store, run_id: str, host: str) -> dict[str, Any]:
    """One host of a run: every step it ran, in order, with its outcome and kept output.

    Raises:
        UsageError: the run has no such host.
    """
    run = store.get_run(run_id)
    if host not in run.hosts:
        raise UsageError(f"run {run_id} has no host {host!r}", hint=_suggest(host, run.hosts))
    steps: list[dict[str, Any]] = []
    state = "waiting"
    for e in store.events(run_id, host):
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
    return {"run": run_id, "host": host, "state": state, "steps": steps}
