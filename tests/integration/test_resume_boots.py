"""A kill while the reboot fleet asked for is under way: the resume recognises its own boot
(the intent it journaled before the request), adopts or re-issues the task, and accepts the new
rescue key exactly as the uninterrupted path does; a key change fleet did not cause is still
refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store.base import Event
from tests.conftest import FleetCli
from tests.integration.crashing import kill_when
from tests.integration.test_rescue import ROUND_TRIP
from tests.integration.test_rollout import events_of, new_tid, write_plan

pytestmark = pytest.mark.integration


def reboot_asked(stage: str, moment: str = "task") -> Callable[[list[Event]], bool]:
    """``task``: the reboot task of ``stage`` was started (its id journaled), the wait is under
    way; ``intent``: its intent was journaled (the request may not have been sent yet)."""

    def reached(events: list[Event]) -> bool:
        if moment == "intent":
            return any(e.kind == "boot.intent" and e.stage == stage for e in events)
        return any(e.kind == "host.wait" and e.stage == stage and "task" in e.data for e in events)

    return reached


def server_mode(sandbox: Sandbox, host: int) -> str:
    assert sandbox.api is not None
    return str(sandbox.api.server_mode(sandbox.servers[host - 1].service))


def reboots(sandbox: Sandbox, host: int) -> int:
    assert sandbox.api is not None
    return len(sandbox.api.model.task_ids(sandbox.servers[host - 1].service, "hardReboot"))


@pytest.mark.parametrize("stage", ["rescue", "disk"])
@pytest.mark.parametrize("moment", ["intent", "task"])
def test_kill_during_fleets_own_reboot_wait_resumes(
    stage: str, moment: str, sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    host = 61 if stage == "rescue" else 62
    before = reboots(sandbox, host)
    plan = write_plan(tmp_path / "p.yaml", ROUND_TRIP.format(tid=new_tid()))
    proc = fleet.popen("rollout", str(plan), "--limit", f"srv-{host:03d}")
    run_id = kill_when(fleet, proc, reboot_asked(stage, moment))
    resumed = fleet("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
    assert status["state"] == "done"
    assert [h["state"] for h in status["hosts"]] == ["ok"]
    assert server_mode(sandbox, host) == "disk"
    # the interrupted reboot was recognised, never asked for twice: adopted (into rescue, whose
    # new key is not pinned yet), found done (on disk, with its pinned key), or asked for once
    # when the kill came before the request
    assert reboots(sandbox, host) - before == 2
    adopted = [
        e
        for e in events_of(fleet, run_id)
        if e.kind == "host.wait" and "adopting" in str(e.data.get("what"))
    ]
    if moment == "task":
        assert [e.stage for e in adopted] == (["rescue"] if stage == "rescue" else [])


def test_a_key_change_fleet_did_not_cause_is_still_refused(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    """Killed while the server boots back to disk; meanwhile the installed system is replaced
    behind fleet's back: the resume adopts its own reboot but refuses the new disk key."""
    assert sandbox.hosts is not None
    host = 62
    # the resume waits for the expected key until reboot.timeout: a short one here
    config = tmp_path / "fleet.toml"
    config.write_text(sandbox.config_path.read_text().replace("timeout = 120.0", "timeout = 12.0"))
    assert "timeout = 12.0" in config.read_text()
    fleet = FleetCli(fleet.state, config)
    plan = write_plan(tmp_path / "p.yaml", ROUND_TRIP.format(tid=new_tid()))
    proc = fleet.popen("rollout", str(plan), "--limit", f"srv-{host:03d}")
    run_id = kill_when(fleet, proc, reboot_asked("disk"))
    name = f"srv-{host:03d}"
    deadline = time.monotonic() + 60
    while server_mode(sandbox, host) != "disk" and time.monotonic() < deadline:
        time.sleep(0.1)
    sandbox.hosts.power_off(name)
    sandbox.hosts.power_on(name, "disk", reinstalled=True)  # a new key; later tests pin it anew
    resumed = fleet("resume", run_id)
    assert resumed.returncode == 1
    assert "host key mismatch" in resumed.stderr and "Traceback" not in resumed.stderr
    status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
    assert [h["state"] for h in status["hosts"]] == ["failed"]


def test_abort_then_a_new_rollout_also_recovers(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    """The runbook's other way out: the killed run aborted, a new rollout on the same server
    (left in rescue, its rescue key never pinned) goes through rescue and back."""
    host = 61
    plan = write_plan(tmp_path / "p.yaml", ROUND_TRIP.format(tid=new_tid()))
    proc = fleet.popen("rollout", str(plan), "--limit", f"srv-{host:03d}")
    run_id = kill_when(fleet, proc, reboot_asked("rescue"))
    fleet("abort", run_id, "--reason", "replaced by a new rollout", check=0)
    again = fleet("rollout", str(plan), "--limit", f"srv-{host:03d}")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert server_mode(sandbox, host) == "disk"
