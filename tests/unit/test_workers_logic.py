"""The workers' pure parts: queue routing, the task payload, and what a re-delivered task
reads from the journal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleet.engine.pipeline import HostJob, HostResult
from fleet.errors import ConfigError, FleetError
from fleet.inventory import Host
from fleet.plan import parse_plan
from fleet.stages.context import ExecSettings
from fleet.store.base import Event, Owner
from fleet.workers.payload import dump_dispatch, dump_result, load_dispatch, load_result
from fleet.workers.routing import queue_for
from fleet.workers.runtime import MARK, answered

AT = datetime(2026, 2, 28, 23, 59, tzinfo=UTC)


def host(**kw: object) -> Host:
    return Host("srv-001", "127.0.0.1", datacenter="gra3", labels={"net": "blue"}, **kw)  # type: ignore[arg-type]


def test_queues_by_datacenter_region_or_label_with_a_default() -> None:
    h = host()
    assert queue_for(h, "datacenter", "fleet") == "gra3"
    assert queue_for(h, "region", "fleet") == "gra"
    assert queue_for(h, "label:net", "fleet") == "blue"
    assert queue_for(h, "label:rack", "fleet") == "fleet"
    assert queue_for(Host("x", "127.0.0.2"), "datacenter", "fleet") == "fleet"
    for bad in ("dc", "label:", "labels:net"):
        with pytest.raises(ConfigError):
            queue_for(h, bad, "fleet")


def test_a_payload_round_trips_and_another_version_is_refused() -> None:
    steps = [{"name": "a", "apply": "true"}]
    plan = parse_plan({"name": "p", "stages": [{"name": "s", "steps": steps}]}, "adhoc")
    job = HostJob(host(), plan, "r1", Owner("u", "m", 1, "r1"), ExecSettings(lease_ttl=7.0))
    back = load_dispatch(dump_dispatch(job, 42, "fleet:stop:r1:42"))
    assert (back.job, back.run_token, back.stop_key) == (job, 42, "fleet:stop:r1:42")
    assert back.job.plan.hash == plan.hash
    with pytest.raises(FleetError):
        load_dispatch({**dump_dispatch(job, 42, "k"), "version": 99})


def test_a_result_round_trips_and_garbage_is_the_hosts_failure() -> None:
    result = HostResult("srv-001", "failed", "payload", "s", "a", "exit 3", 1)
    assert load_result(dump_result(result), "srv-001") == result
    assert load_result({"host": "srv-002", "outcome": "ok"}, "srv-001").outcome == "failed"
    assert load_result(None, "srv-001").failure == "infrastructure"


def ev(seq: int, kind: str, **kw: object) -> Event:
    return Event("r1", kind, AT, host="srv-001", seq=seq, **kw)  # type: ignore[arg-type]


def test_a_redelivered_task_answers_with_the_end_after_its_own_mark_only() -> None:
    earlier = [ev(1, MARK, data={"task": "old"}), ev(2, "host.end", outcome="failed")]
    mine = ev(3, MARK, data={"task": "t1"})
    assert answered(earlier, "t1") is None  # an end before this task's mark is not its answer
    assert answered([*earlier, mine], "t1") is None  # marked, not ended: run again
    end = ev(4, "host.end", outcome="ok", data={"failure": None, "applied": 2})
    got = answered([*earlier, mine, end], "t1")
    assert got == HostResult("srv-001", "ok", None, None, None, None, 2)
    skip = ev(4, "host.skip", outcome="lease", excerpt="held by x")
    assert answered([mine, skip], "t1") == HostResult(
        "srv-001", "skipped", "lease", message="held by x"
    )
