"""One live owner per run, on the sandbox's real sshd hosts: a second owner is refused naming the
live one; a killed owner's run shows as interrupted and is taken over (audited, host leases
re-issued to the new owner); a run keeps its inputs; a rollout skipping every host fails."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from tests.conftest import FleetCli
from tests.integration.crashing import kill_when
from tests.integration.test_rollout import events_of, names, new_tid, write_plan
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

HOSTS = (63, 66)  # four hosts, for this module

SLOW = """
name: slow
vars: {{tid: {tid}, color: grey}}
stages:
  - name: first
    steps:
      - name: paint
        check: test -f "$HOME"/{{{{ tid }}}}.one
        apply: mkdir -p "$HOME" && echo {{{{ color }}}} > "$HOME"/{{{{ tid }}}}.one
  - name: second
    steps:
      - name: wait
        check: test -f "$HOME"/{{{{ tid }}}}.two
        apply: {pause} && echo {{{{ color }}}} > "$HOME"/{{{{ tid }}}}.two
"""
#: A pause that ends when the test opens the gate (a file the sandbox hosts, on this machine, see),
#: or after 60 s at most: the run stays alive exactly as long as the test needs it.
GATED = "i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"


def slow_plan(tmp_path: Path, tid: str, pause: float = 2.0, gate: Path | None = None) -> Path:
    wait = GATED.format(gate=gate) if gate else f"sleep {pause}"
    return write_plan(tmp_path / "p.yaml", SLOW.format(tid=tid, pause=wait))


def started(host: str) -> object:
    return lambda events: any(
        e.kind == "step.start" and e.host == host and e.stage == "second" for e in events
    )


def test_a_second_owner_is_refused_naming_the_live_one(fleet: FleetCli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    plan = slow_plan(tmp_path, new_tid(), gate=gate)
    proc = fleet.popen("rollout", str(plan), "--limit", "srv-063")
    try:
        wait_for("the run", lambda: (fleet.state / "fleet.db").exists() and fleet_runs(fleet))
        run_id = fleet_runs(fleet)[0]["id"]
        refused = fleet("resume", run_id, check=4)
        assert (
            f"owned by {os.environ.get('USER', '')}".rstrip() in refused.stderr
            or "owned by" in refused.stderr
        )
        assert f"pid {proc.pid}" in refused.stderr and "alive" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        gate.touch()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def fleet_runs(fleet: FleetCli) -> list[dict[str, object]]:
    return list(json.loads(fleet("status", "--json", check=0).stdout))


def test_a_killed_run_is_interrupted_then_taken_over(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    tid = new_tid()
    plan = slow_plan(tmp_path, tid)
    proc = fleet.popen(
        "rollout", str(plan), "--limit", names(*HOSTS), "--batches", "100%", "--var", "color=blue"
    )
    dead_pid = proc.pid
    run_id = kill_when(fleet, proc, started("srv-064"))
    status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
    assert status["state"] == "interrupted" and f"fleet resume {run_id}" in status["reason"]
    assert "running" not in {h["state"] for h in status["hosts"]}
    assert "interrupted" in {h["state"] for h in status["hosts"]}
    listed = {r["id"]: r["state"] for r in fleet_runs(fleet)}
    assert listed[run_id] == "interrupted"
    resumed = fleet("resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
    assert status["state"] == "done" and {h["state"] for h in status["hosts"]} == {"ok"}
    events = events_of(fleet, run_id)
    (takeover,) = [e for e in events if e.kind == "run.takeover"]
    assert f"pid {dead_pid}" in takeover.data["from"] and "is gone" in takeover.data["why"]
    assert "srv-064" in takeover.data["hosts"]
    # the new owner's own pid is on every lease it took, and none is left behind
    starts = [e for e in events if e.kind == "host.start" and e.seq > (takeover.seq or 0)]
    assert starts and all(e.data["token"] > takeover.data["token"] for e in starts)
    assert json.loads(fleet("leases", "list", "--json", check=0).stdout) == []
    # the --var value of the start is what the resumed steps used
    assert sandbox.hosts is not None
    for i in range(HOSTS[0], HOSTS[1] + 1):
        home = sandbox.hosts.home_dir(f"srv-{i:03d}", "disk")
        assert (home / f"{tid}.one").read_text().strip() == "blue"
        assert (home / f"{tid}.two").read_text().strip() == "blue"


def test_a_rollout_whose_every_host_is_quarantined_fails(fleet: FleetCli, tmp_path: Path) -> None:
    store = open_store(fleet.state / "fleet.db")
    try:
        for host in ("srv-065", "srv-066"):
            store.quarantine(host, "r-earlier", "kept failing")
    finally:
        store.close()
    plan = slow_plan(tmp_path, new_tid(), pause=0)
    proc = fleet("rollout", str(plan), "--limit", "srv-065,srv-066", check=1)
    assert "every host was skipped" in proc.stderr
    assert fleet_runs(fleet)[0]["state"] == "failed"


def test_a_run_lease_broken_under_a_live_owner_stops_it(fleet: FleetCli, tmp_path: Path) -> None:
    """A live but stuck owner is displaced by breaking its lease: its next write is refused, it
    stops at once with one line and exit 4, and a resume takes the run over."""
    plan = slow_plan(tmp_path, new_tid(), pause=2)
    proc = fleet.popen("rollout", str(plan), "--limit", "srv-063")
    wait_for("the run", lambda: (fleet.state / "fleet.db").exists() and fleet_runs(fleet))
    run_id = str(fleet_runs(fleet)[0]["id"])
    wait_for(
        "the second stage to start",
        lambda: any(
            e.kind == "step.start" and e.stage == "second" for e in events_of(fleet, run_id)
        ),
    )
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        fleet("leases", "break", "--run", run_id, "--reason", "owner hung", check=0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "Traceback" not in err and "lease lost" in err, err
    resumed = fleet("resume", run_id)
    assert resumed.returncode == 0, resumed.stderr


def test_fleet_run_looks_at_quarantined_hosts_only_when_asked(fleet: FleetCli) -> None:
    """Diagnosis of a quarantined host: skipped by default, run with --include-quarantined,
    and still quarantined afterwards."""
    store = open_store(fleet.state / "fleet.db")
    try:
        store.quarantine("srv-067", "r-earlier", "kept failing")
    finally:
        store.close()
    skipped = fleet("run", "-l", "srv-067", "echo looked-at", check=1)
    assert "looked-at" not in skipped.stdout and "every host was skipped" in skipped.stderr
    looked = fleet("run", "-l", "srv-067", "--include-quarantined", "echo looked-at", check=0)
    assert "srv-067" in looked.stdout and "looked-at" in looked.stdout
    listed = json.loads(fleet("quarantine", "list", "--json", check=0).stdout)
    assert [q["host"] for q in listed] == ["srv-067"]
