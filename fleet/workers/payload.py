"""What travels between the controller and a worker: a host's job and its result, as JSON.

A task carries data only (the host record, the plan, the run's id and fencing token, the
execution settings), never open objects; the worker rebuilds what earlier attempts did from
the journal, not from the payload (see :mod:`fleet.workers.runtime`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from fleet.engine.pipeline import HostJob, HostResult
from fleet.errors import FleetError
from fleet.inventory import Host
from fleet.plan import Plan
from fleet.stages.context import ExecSettings
from fleet.store.base import Owner

#: The Celery task's name (the controller sends it by name: it need not import the worker).
TASK_NAME = "fleet.run_host"
#: Payload format: a worker refuses a payload of another version rather than guess.
VERSION = 1


@dataclass(frozen=True)
class Dispatch:
    """One host's job as a worker receives it, with the run's fence and stop channel."""

    job: HostJob
    run_token: int  # the controller's run lease token: every write the worker makes carries it
    stop_key: str  # where the controller says "stop" (see fleet.workers.stopchannel)


def dump_dispatch(job: HostJob, run_token: int, stop_key: str) -> dict[str, Any]:
    return {
        "version": VERSION,
        "host": job.host.to_dict(),
        "plan": job.plan.model_dump(mode="json"),
        "run_id": job.run_id,
        "owner": asdict(job.owner),
        "settings": asdict(job.settings),
        "run_token": run_token,
        "stop_key": stop_key,
    }


def load_dispatch(data: Any) -> Dispatch:
    """The dispatch a payload describes; a payload of another version is refused."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        raise FleetError(f"task payload of version {version!r}, this worker reads {VERSION}")
    known = {f.name for f in fields(ExecSettings)}
    settings = ExecSettings(**{k: v for k, v in data["settings"].items() if k in known})
    job = HostJob(
        Host.from_dict(data["host"]),
        Plan.model_validate(data["plan"]),
        str(data["run_id"]),
        Owner(**data["owner"]),
        settings,
    )
    return Dispatch(job, int(data["run_token"]), str(data["stop_key"]))


def dump_result(result: HostResult) -> dict[str, Any]:
    return asdict(result)


def load_result(data: Any, host: str) -> HostResult:
    """A worker's answer; anything else is this host's failure, never the rollout's crash."""
    if isinstance(data, dict) and data.get("host") == host and "outcome" in data:
        known = {f.name for f in fields(HostResult)}
        return HostResult(**{k: v for k, v in data.items() if k in known})
    return HostResult(host, "failed", "infrastructure", message=f"worker answered {data!r:.300}")
