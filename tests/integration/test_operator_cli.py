"""Operator controls against a real rollout: the global halt, Ctrl-C once and twice, leases,
and the `fleet ovh` commands."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli
from tests.integration.test_rollout import events_of, last_run, names, new_tid, write_plan
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SLOW = """
name: slow
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
      - name: sleep
        check: test -f "$HOME"/{{{{ tid }}}}.done
        apply: sleep 1.5 && mkdir -p "$HOME" && touch "$HOME"/{{{{ tid }}}}.done
"""


def started_hosts(fleet: FleetCli) -> int:
    runs = json.loads(fleet("status", "--json", check=0).stdout)
    if not runs:
        return 0
    return sum(1 for e in events_of(fleet, runs[0]["id"]) if e.kind == "host.start")


def test_global_halt_stops_new_hosts_and_resume_finishes(fleet: FleetCli, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.yaml", SLOW.format(tid=new_tid()))
    proc = fleet.popen(
        "rollout", str(plan), "--limit", names(11, 20), "--batches", "100%", "-c", "2"
    )
    wait_for("a host to start", lambda: started_hosts(fleet) >= 1)
    fleet("halt", "--reason", "storage alerts in gra3", check=0)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "global halt" in err and "storage alerts in gra3" in err
    run_id = last_run(fleet)["id"]
    events = events_of(fleet, run_id)
    assert sum(1 for e in events if e.kind == "host.start") < 10
    # halted runs stay halted: resume refuses nothing, but the halt still holds every host back
    held = fleet("resume", run_id)
    assert held.returncode == 2 and "global halt" in held.stderr
    fleet("unhalt", check=0)
    done = fleet("resume", run_id)
    assert done.returncode == 0, done.stderr
    status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
    assert status["state"] == "done" and {h["state"] for h in status["hosts"]} == {"ok"}


def test_first_ctrl_c_finishes_in_flight_steps_second_cuts_them(
    fleet: FleetCli, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "p.yaml", SLOW.format(tid=new_tid()))
    proc = fleet.popen(
        "rollout", str(plan), "--limit", names(11, 20), "--batches", "100%", "-c", "2"
    )
    wait_for("two hosts to start", lambda: started_hosts(fleet) >= 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    run_id = last_run(fleet)["id"]
    events = events_of(fleet, run_id)
    starts = [e.host for e in events if e.kind == "host.start"]
    ends = {e.host: e.outcome for e in events if e.kind == "host.end"}
    assert set(starts) == set(ends), "in-flight hosts finished"
    assert len(starts) < 10
    assert json.loads(fleet("status", run_id, "--json", check=0).stdout)["state"] == "halted"
    assert "interrupted by the operator" in err
    # twice: in-flight steps are cut, the run is aborted, leases are released
    tid = new_tid()
    plan2 = write_plan(tmp_path / "p2.yaml", SLOW.format(tid=tid).replace("sleep 1.5", "sleep 20"))
    proc = fleet.popen("rollout", str(plan2), "--limit", names(11, 12), "--batches", "100%")

    def new_run_started() -> bool:
        run = last_run(fleet)
        return run["id"] != run_id and any(
            e.kind == "step.start" for e in events_of(fleet, run["id"])
        )

    wait_for("the second rollout's first step", new_run_started)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert (
        json.loads(fleet("status", last_run(fleet)["id"], "--json", check=0).stdout)["state"]
        == "aborted"
    )
    assert json.loads(fleet("leases", "list", "--json", check=0).stdout) == []


def test_leases_list_and_break_are_audited(fleet: FleetCli, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path / "p.yaml", SLOW.format(tid=new_tid()).replace("sleep 1.5", "sleep 8")
    )
    proc = fleet.popen("rollout", str(plan), "--limit", names(13, 13))
    try:
        wait_for("a lease", lambda: json.loads(fleet("leases", "list", "--json", check=0).stdout))
        leases = json.loads(fleet("leases", "list", "--json", check=0).stdout)
        assert leases[0]["host"] == "srv-013" and "run r" in leases[0]["owner"]
        assert leases[0]["token"] >= 1 and not leases[0]["expired"]
        broke = fleet("leases", "break", "srv-013", "--reason", "operator laptop died", check=0)
        assert "srv-013" in broke.stdout
    finally:
        proc.communicate(timeout=60)
    events = events_of(fleet, last_run(fleet)["id"])
    audit = [e for e in events if e.kind == "lease.break"]
    assert audit and audit[0].data["reason"] == "operator laptop died" and audit[0].data["who"]


def test_ovh_commands_show_servers_boot_and_tasks(fleet: FleetCli, sandbox: Sandbox) -> None:
    servers = json.loads(fleet("ovh", "servers", "--json", check=0).stdout)
    assert len(servers) == len(sandbox.servers)
    hybrid = [s for s in servers if "HDD" in s["disks"]]
    assert hybrid and all("NVME" in s["disks"] for s in hybrid)
    boot = fleet("ovh", "boot", "srv-014", "rescue", "--wait", timeout=120)
    assert boot.returncode == 0, boot.stderr
    assert "rescue" in boot.stdout and "done" in boot.stdout
    back = fleet("ovh", "boot", "srv-014", "disk", "--wait", timeout=120)
    assert back.returncode == 0, back.stderr
    tasks = fleet("ovh", "tasks", "srv-014", "--function", "hardReboot", check=0).stdout
    assert tasks.count("hardReboot") >= 2 and "done" in tasks
    assert sandbox.api is not None
    assert sandbox.api.server_mode(sandbox.servers[13].service) == "disk"
