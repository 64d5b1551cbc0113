"""Creating runs and preparing their resumption: the bookkeeping around a :class:`Rollout`.

A run record keeps everything a resume needs even if the inventory or plan file changed since:
the host records, the options, the plan itself and the inputs it was started with (``--var``
values, ``--limit``, the plan reference). A plan loaded from a file is re-read on resume, with
the run's own ``--var`` values; when it differs from the plan the run started with, the resume
is refused unless the operator accepts the change (which the journal then records).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from fleet.clock import Clock, SystemClock
from fleet.engine.owners import current_owner
from fleet.errors import FleetError, UsageError
from fleet.inventory import Host
from fleet.plan import Plan, load_plan_file, parse_plan
from fleet.store.base import RunRecord, Store

#: Run option holding the inputs a run was started with (vars, limit, plan reference...).
INPUTS = "inputs"


def new_run_id(clock: Clock | None = None) -> str:
    at: datetime = (clock or SystemClock()).now()
    return f"r{at:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_run(
    store: Store,
    plan: Plan,
    hosts: list[Host],
    options: dict[str, Any],
    inputs: dict[str, Any] | None = None,
) -> RunRecord:
    """Record a new run; ``inputs`` (``vars``, ``limit``...) are kept for its resumes."""
    run_id = new_run_id()
    record = RunRecord(
        id=run_id,
        plan_name=plan.name,
        plan_source=plan.source,
        plan_hash=plan.hash,
        hosts=tuple(h.name for h in hosts),
        options={
            **options,
            INPUTS: dict(inputs or {}),
            "plan": plan.model_dump(mode="json"),
            "host_records": [h.to_dict() for h in hosts],
        },
        owner=current_owner(run_id),
    )
    store.create_run(record)
    return record


def check_resumable(run: RunRecord) -> None:
    """Refuse runs that ended for good (a live owner is refused by the claim)."""
    if run.state in ("done", "aborted"):
        raise UsageError(
            f"run {run.id} is {run.state}; nothing to resume", hint="start a new rollout"
        )


def run_vars(run: RunRecord) -> dict[str, Any]:
    """The ``--var`` values the run was started with."""
    inputs = run.options.get(INPUTS) or {}
    return dict(inputs.get("vars") or {})


def plan_for_resume(run: RunRecord) -> Plan:
    """The plan file as it is now when it still exists (with the run's ``--var`` values), else
    the plan stored with the run."""
    source = run.plan_source
    if source not in ("adhoc",) and not source.startswith("builtin:") and Path(source).is_file():
        plan = load_plan_file(Path(source))
        values = run_vars(run)
        if values:
            plan = plan.model_copy(update={"vars": {**plan.vars, **values}})
        return plan
    stored = run.options.get("plan")
    if not isinstance(stored, dict):
        raise FleetError(f"run {run.id} has no stored plan and {source} is gone")
    # ``code`` (digests of the files the plan uses) is recomputed by parse_plan, never read
    return parse_plan({k: v for k, v in stored.items() if k not in ("source", "code")}, source)


def check_inputs(run: RunRecord, plan: Plan, *, accept: bool) -> str | None:
    """The change of inputs a resume would bring (a plan edited since the run started), or
    None; refused unless ``accept`` (the operator's ``--accept-plan-change``)."""
    if plan.hash == run.plan_hash:
        return None
    change = (
        f"plan {run.plan_source} changed since the run started ({run.plan_hash} -> {plan.hash})"
    )
    if not accept:
        raise UsageError(
            f"run {run.id}: {change}; nothing was resumed",
            hint="check the change, then `fleet resume RUN --accept-plan-change` (journaled)",
        )
    return change


def hosts_of(run: RunRecord) -> list[Host]:
    return [Host.from_dict(d) for d in run.options.get("host_records", [])]
