"""Creating runs and preparing their resumption: the bookkeeping around a :class:`Rollout`.

A run record keeps everything a resume needs even if the inventory or plan file changed since:
the host records, the options and the plan itself. A plan loaded from a file is re-read on resume
(so that an operator can fix it), and the journal notes when its hash changed.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from fleet.clock import Clock, SystemClock
from fleet.errors import FleetError, UsageError
from fleet.inventory import Host
from fleet.plan import Plan, load_plan_file, parse_plan
from fleet.store.base import Owner, RunRecord, Store


def current_owner(run_id: str | None = None) -> Owner:
    return Owner(getpass.getuser(), socket.gethostname(), os.getpid(), run_id)


def new_run_id(clock: Clock | None = None) -> str:
    at: datetime = (clock or SystemClock()).now()
    return f"r{at:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_run(store: Store, plan: Plan, hosts: list[Host], options: dict[str, Any]) -> RunRecord:
    run_id = new_run_id()
    record = RunRecord(
        id=run_id,
        plan_name=plan.name,
        plan_source=plan.source,
        plan_hash=plan.hash,
        hosts=tuple(h.name for h in hosts),
        options={
            **options,
            "plan": plan.model_dump(mode="json"),
            "host_records": [h.to_dict() for h in hosts],
        },
        owner=current_owner(run_id),
    )
    store.create_run(record)
    return record


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def check_resumable(run: RunRecord) -> None:
    """Refuse runs that ended for good, or that a live process still runs."""
    if run.state in ("done", "aborted"):
        raise UsageError(
            f"run {run.id} is {run.state}; nothing to resume", hint="start a new rollout"
        )
    me = socket.gethostname()
    o = run.owner
    if run.state == "running" and o.machine == me and o.pid != os.getpid() and pid_alive(o.pid):
        raise UsageError(f"run {run.id} is still running (pid {run.owner.pid} on {me})")


def plan_for_resume(run: RunRecord) -> Plan:
    """The plan file as it is now when it still exists, else the plan stored with the run."""
    source = run.plan_source
    if source not in ("adhoc",) and not source.startswith("builtin:") and Path(source).is_file():
        return load_plan_file(Path(source))
    stored = run.options.get("plan")
    if not isinstance(stored, dict):
        raise FleetError(f"run {run.id} has no stored plan and {source} is gone")
    # ``code`` (digests of the files the plan uses) is recomputed by parse_plan, never read
    return parse_plan({k: v for k, v in stored.items() if k not in ("source", "code")}, source)


def hosts_of(run: RunRecord) -> list[Host]:
    return [Host.from_dict(d) for d in run.options.get("host_records", [])]


def take_over_dead_leases(store: Store, run: RunRecord) -> list[str]:
    """Break this run's leases left by a dead process on this machine (after kill -9)."""
    me = socket.gethostname()
    broken = []
    for lease in store.list_leases():
        o = lease.owner
        if o.run_id == run.id and o.machine == me and o.pid != os.getpid() and not pid_alive(o.pid):
            store.break_lease(
                lease.host, str(current_owner(run.id)), f"resume: pid {o.pid} is dead"
            )
            broken.append(lease.host)
    return broken
