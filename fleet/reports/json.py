"""The JSON report: a run, its summary, batches and every host's steps, as one document.

The other reports are drawn from this same document, so they agree with it by construction.
Only the rollout options and each host's place (datacenter, rack) are taken from the run record
(it also keeps the plan and host records, which a report does not need to repeat). ``sessions``
lists each start and resume of the run and how it ended (a halt, say); each host carries the
facts its python stages decided (the disks a plan chose, for instance).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fleet.clock import utc_iso
from fleet.reports.model import OPTION_KEYS, HostTrack, RunProgress, Span
from fleet.reports.records import host_records
from fleet.store.base import Event, RunRecord

FORMAT = "fleet-report/1"


def render(run: RunRecord, events: list[Event]) -> str:
    return json.dumps(report_document(run, events), indent=2) + "\n"


def report_document(run: RunRecord, events: list[Event]) -> dict[str, Any]:
    progress = RunProgress.replay(run.hosts, events)
    places = _places(run)
    records = host_records(events)
    return {
        "format": FORMAT,
        "run": _run(run),
        "summary": _summary(run, progress),
        "batches": [
            {
                "number": b.number,
                "index": b.index,
                "session": b.session,
                "hosts": b.hosts,
                "start": _iso(b.start),
                "end": _iso(b.end),
            }
            for b in progress.batches
        ],
        "sessions": [
            {
                "number": m.number,
                "kind": m.kind,
                "start": utc_iso(m.start),
                "end": _iso(m.end),
                "outcome": m.outcome,
                "reason": m.reason,
            }
            for m in progress.session_marks
        ],
        "hosts": [
            _host(t, places.get(t.name, {}), records.get(t.name, {}))
            for t in progress.hosts.values()
        ],
        "gates": [
            {
                "at": utc_iso(g.at),
                "batch": g.data.get("batch"),
                "outcome": g.outcome,
                "exit_code": g.exit_code,
                "excerpt": g.excerpt,
            }
            for g in progress.gates
        ],
    }


def _run(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "plan": run.plan_name,
        "plan_source": run.plan_source,
        "plan_hash": run.plan_hash,
        "owner": str(run.owner),
        "state": run.state,
        "reason": run.reason,
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "options": {k: run.options.get(k) for k in OPTION_KEYS if k in run.options},
    }


def _summary(run: RunRecord, p: RunProgress) -> dict[str, Any]:
    from fleet.engine.rollout import Budget

    opts = run.options
    budget = Budget(opts.get("max_failures"), opts.get("max_ratio"))
    failed = sum(1 for t in p.hosts.values() if t.state == "failed")
    end = p.ended_at or p.last_at
    return {
        "hosts": len(p.hosts),
        "outcomes": {k: v for k, v in p.counts().items() if v},
        "budget": {"allowed": budget.describe(), "failed": failed},
        "started_at": _iso(p.started_at),
        "ended_at": _iso(p.ended_at),
        "duration_s": _seconds(p.started_at, end),
        "sessions": p.sessions,
        "batches": len(p.batches),
    }


def _places(run: RunRecord) -> dict[str, dict[str, Any]]:
    """Each host's datacenter and rack, as the run's host records have them."""
    records = run.options.get("host_records")
    out: dict[str, dict[str, Any]] = {}
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and "name" in record:
            out[str(record["name"])] = {k: record.get(k) for k in ("datacenter", "rack")}
    return out


def _host(t: HostTrack, place: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return {
        "record": record,
        "name": t.name,
        "datacenter": place.get("datacenter"),
        "rack": place.get("rack"),
        "state": t.state,
        "batch": t.batch,
        "duration_s": round(t.duration, 3),
        "failure": t.failure,
        "where": t.where,
        "message": t.message,
        "output": t.output,
        "retries": t.retries,
        "facts": t.facts,
        "steps": [_span(s) for s in t.spans],
    }


def _span(s: Span) -> dict[str, Any]:
    return {
        "stage": s.stage,
        "step": s.step,
        "batch": s.batch,
        "start": utc_iso(s.start),
        "end": _iso(s.end),
        "duration_s": _seconds(s.start, s.end),
        "outcome": s.outcome,
        "exit_code": s.exit_code,
        "excerpt": s.excerpt,
        **({"output": s.output} if s.output else {}),
    }


def _iso(at: datetime | None) -> str | None:
    return utc_iso(at) if at is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)
