"""The OVH API budget of a rescue round trip, counted by the fake API itself (per server, per
route) while fleet runs a real rollout over the sandbox's sshd hosts.

Budget: at most :data:`BUDGET` calls a host: the server record, the rescue and disk boot
lookups, each stage's boot setting, reboot request and one read of the task's outcome; task
polls only while SSH has not proven the new boot. The calls that name no server (``/auth/time``,
once per process) are not charged to hosts.

Under chaos (5xx, HTML 502, 429, early 404 on new tasks) the documented bound is
``BUDGET + CHAOS_COST * failed answers of that host``: a failed answer costs itself and, at
most, the lookups a retry makes (a failed reboot request is followed by the search for a task it
may have started: the task list and up to three task reads).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.ovh_calls import CallSnapshot
from fleet.sandbox.ovh_chaos import ChaosRule, Early404, TaskFailure
from fleet.sandbox.sandbox import Sandbox
from fleet.store.base import Event
from tests.conftest import FleetCli
from tests.integration.crashing import run_reached
from tests.integration.test_rescue import ROUND_TRIP
from tests.integration.test_rollout import events_of, last_run, names, new_tid, write_plan
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

BUDGET = 12
#: Calls one failed answer may cost at most, itself included (see the module's docstring).
CHAOS_COST = 5
TASK_ROUTE = "GET /dedicated/server/{sn}/task/{id}"


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox; chaos knobs set by the test are always reset afterwards."""
    assert sandbox.api is not None
    try:
        yield sandbox
    finally:
        sandbox.api.chaos.reset()


def round_trip(
    box: Sandbox, fleet: FleetCli, tmp_path: Path, first: int, last: int
) -> CallSnapshot:
    """A rescue round trip of hosts ``first``..``last``; the calls the fake counted meanwhile,
    limited to those hosts' servers (asserted to be the only ones charged)."""
    assert box.api is not None
    plan = write_plan(tmp_path / "p.yaml", ROUND_TRIP.format(tid=new_tid()))
    before = box.api.calls.snapshot()
    proc = fleet("rollout", str(plan), "--limit", names(first, last), timeout=600)
    calls = box.api.calls.snapshot().since(before)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    services = {s.service for s in box.servers[first - 1 : last]}
    charged = {server for server, n in calls.per_server.items() if n and server != "-"}
    assert charged == services, "calls charged to servers outside the rollout"
    assert "; OVH API: " in proc.stdout  # the rate limit's use, printed at batch and run ends
    return calls


def test_a_rescue_round_trip_costs_at_most_12_calls_a_host(
    api: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    calls = round_trip(api, fleet, tmp_path, 46, 49)
    for server in api.servers[45:49]:
        routes = calls.routes_of(server.service)
        assert calls.per_server[server.service] <= BUDGET, routes
        # both reboots asked once, both boots set once, each task's outcome read
        assert routes["POST /dedicated/server/{sn}/reboot"] == 2, routes
        assert routes["PUT /dedicated/server/{sn}"] == 2, routes
        assert routes[TASK_ROUTE] >= 2, routes
        assert routes["GET /dedicated/server/{sn}"] == 1, routes  # kept for the run
    assert calls.per_server["-"] <= 2  # /auth/time once per process (rollout and status)
    # the journal says what proved each boot and how the task ended
    events = events_of(fleet, last_run(fleet)["id"])
    tasks = [e for e in events if e.kind == "boot.task"]
    assert len(tasks) == 8
    assert {e.outcome for e in tasks} == {"done"}
    assert {e.data["proven_by"] for e in tasks} == {"ssh"}
    intents = [e for e in events if e.kind == "boot.intent"]
    assert all(e.data["witness"] for e in intents)  # the key seen before each request
    ends = [e for e in events if e.kind in ("batch.end", "run.end")]
    assert all(e.data["ovh"]["requests"] > 0 for e in ends)  # the rate limit's use, journaled


def test_under_chaos_every_call_beyond_the_budget_follows_a_failed_answer(
    api: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    assert api.api is not None
    api.api.chaos.add_rule(ChaosRule(kind="500", probability=0.05))
    api.api.chaos.add_rule(ChaosRule(kind="502", probability=0.02))
    api.api.chaos.add_rule(ChaosRule(kind="429", count=4, retry_after=1))
    api.api.chaos.hide_new_tasks(Early404(gets=2))
    calls = round_trip(api, fleet, tmp_path, 50, 52)
    failed_somewhere = 0
    for server in api.servers[49:52]:
        spent, failed = calls.per_server[server.service], calls.failed[server.service]
        assert spent <= BUDGET + CHAOS_COST * failed, calls.routes_of(server.service)
        failed_somewhere += failed
    assert failed_somewhere > 0  # the chaos was felt (the early 404s at least)


RESCUE_THEN_REBOOT = """
name: rescue-reboot
stages:
  - name: rescue
    kind: rescue
  - name: pause
    steps:
      - name: wait
        apply: sleep 3
  - name: again
    kind: reboot
    params: {how: ovh}
  - name: disk
    kind: disk
"""


def test_a_failed_reboot_is_never_proven_by_the_old_system_answering(
    api: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    """The case that would slip past an SSH-only proof: a reboot in rescue whose task fails
    leaves the old rescue system up, with the rescue role's identity and a key fleet accepts
    (a rescue boot may present a new one). It is the witness (the key seen before the request)
    that keeps it from passing for the new boot: the failure is noticed at the task's poll, the
    stage retried, and only the rescue system that came up after it proves the boot."""
    assert api.api is not None
    host = 54  # a host of its own, left on its disk as the other tests expect
    service = api.servers[host - 1].service
    plan = write_plan(tmp_path / "p.yaml", RESCUE_THEN_REBOOT)
    tasks_before = len(api.api.model.task_ids(service, "hardReboot"))
    proc = fleet.popen("rollout", str(plan), "--limit", names(host, host))
    try:
        wait_for("the run to reach its pause", lambda: run_reached(fleet, paused), 120)
        api.api.chaos.fail_tasks(TaskFailure(function="hardReboot", status="ovhError", count=1))
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    events = events_of(fleet, last_run(fleet)["id"])
    retries = [e for e in events if e.kind == "host.retry"]  # an infrastructure failure
    assert [e.stage for e in retries] == ["again"] and "ovhError" in (retries[0].excerpt or "")
    # rescue, the failed reboot, the retried one, disk: never taken for done before it happened
    assert len(api.api.model.task_ids(service, "hardReboot")) - tasks_before == 4
    proofs = [e for e in events if e.kind == "boot.task"]
    assert [(e.stage, e.outcome, e.data["proven_by"]) for e in proofs] == [
        ("rescue", "done", "ssh"),
        ("again", "done", "ssh"),
        ("disk", "done", "ssh"),
    ]
    assert api.api.server_mode(service) == "disk"


def paused(events: list[Event]) -> bool:
    return any(e.kind == "step.start" and e.stage == "pause" for e in events)
