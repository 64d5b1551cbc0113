"""Rescue round trips over the sandbox's OVH API and sshd hosts: host keys change only when fleet
caused it, and chaos in the API or on the hosts is ridden through as infrastructure trouble."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.ovh_chaos import ChaosRule, Early404
from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from tests.conftest import FleetCli
from tests.integration.test_rollout import events_of, last_run, names, new_tid, write_plan

pytestmark = pytest.mark.integration

ROUND_TRIP = """
name: round-trip
vars: {{tid: {tid}}}
converged: test -f "$HOME"/{{{{ tid }}}}.done
stages:
  - name: rescue
    kind: rescue
  - name: in-rescue
    steps:
      - name: prove rescue
        apply: hostname | grep -q '^rescue'
  - name: disk
    kind: disk
  - name: mark
    steps:
      - name: done
        check: test -f "$HOME"/{{{{ tid }}}}.done
        apply: touch "$HOME"/{{{{ tid }}}}.done
"""


@pytest.fixture
def chaos(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox with chaos knobs turned on by the test; always reset afterwards."""
    try:
        yield sandbox
    finally:
        assert sandbox.api is not None
        sandbox.api.chaos.reset()


def test_rescue_round_trip_under_chaos_has_no_payload_failure(
    chaos: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    assert chaos.api is not None and chaos.hosts is not None
    chaos.api.chaos.add_rule(ChaosRule(kind="500", probability=0.05))
    chaos.api.chaos.add_rule(ChaosRule(kind="502", probability=0.02))
    chaos.api.chaos.add_rule(ChaosRule(kind="429", count=6, retry_after=1))
    chaos.api.chaos.hide_new_tasks(Early404(gets=2))
    chaos.hosts.refuse_connections("srv-057", 2)
    plan = write_plan(tmp_path / "p.yaml", ROUND_TRIP.format(tid=new_tid()))
    proc = fleet("rollout", str(plan), "--limit", names(56, 59), "--batches", "1,100%", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = events_of(fleet, last_run(fleet)["id"])
    assert not [e for e in events if e.kind == "step.end" and e.outcome == "failed"]
    ends = [e for e in events if e.kind == "host.end"]
    assert [e.outcome for e in ends] == ["ok"] * 4
    # it really went through rescue and back, with the keys fleet expected
    store = open_store(fleet.state / "fleet.db")
    try:
        for i in range(56, 60):
            disk, rescue = (
                store.pinned_key(f"srv-{i:03d}", "disk"),
                store.pinned_key(f"srv-{i:03d}", "rescue"),
            )
            assert disk and rescue and disk != rescue
    finally:
        store.close()
    assert (
        chaos.api.server_mode("ns3100055.ip-" + chaos.servers[55].address.replace(".", "-") + ".eu")
        == "disk"
    )
    # and a second rollout finds everything converged without rebooting anything
    again = fleet("rollout", str(plan), "--limit", names(56, 59), "--batches", "100%")
    assert again.returncode == 0
    events = events_of(fleet, last_run(fleet)["id"])
    assert not [e for e in events if e.kind == "host.wait"], "no reboot on a converged host"


def test_unexpected_host_key_change_stops_that_host(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    assert sandbox.hosts is not None
    tid = new_tid()
    first = fleet("run", "--limit", "srv-060", f"mkdir -p $HOME/{tid}")
    assert first.returncode == 0, first.stderr  # first contact pins the installed system's key
    # the server is reinstalled behind fleet's back: a new key answers at the same address
    sandbox.hosts.power_off("srv-060")
    sandbox.hosts.power_on("srv-060", "disk", reinstalled=True)
    proc = fleet("run", "--limit", "srv-060", f"mkdir -p $HOME/{tid}-after")
    assert proc.returncode == 1
    assert "srv-060" in proc.stderr and "host key" in proc.stderr.lower()
    assert not (sandbox.hosts.home_dir("srv-060", "disk") / f"{tid}-after").exists()
    status = json.loads(fleet("status", last_run(fleet)["id"], "--json", check=0).stdout)
    assert status["hosts"][0]["state"] == "failed"


REFUSED_IN_RESCUE = """
name: refused-in-rescue
vars: {{tid: {tid}}}
converged: test -f "$HOME"/{{{{ tid }}}}.done
stages:
  - name: rescue
    kind: rescue
  - name: guard
    steps:
      - name: refuse
        apply: test -f "$HOME"/{{{{ tid }}}}.allowed
  - name: disk
    kind: disk
"""


def test_a_host_left_in_rescue_by_a_refusal_starts_the_next_run_from_rescue(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    assert sandbox.hosts is not None
    tid = new_tid()
    plan = write_plan(tmp_path / "p.yaml", REFUSED_IN_RESCUE.format(tid=tid))
    first = fleet("rollout", str(plan), "--limit", "srv-053", timeout=600)
    assert first.returncode == 1  # refused in rescue: the host stays there, quarantined
    assert fleet("quarantine", "clear", "srv-053").returncode == 0
    (sandbox.hosts.home_dir("srv-053", "rescue") / f"{tid}.allowed").write_text("")
    again = fleet("rollout", str(plan), "--limit", "srv-053", timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    events = events_of(fleet, last_run(fleet)["id"])
    assert [e.data["mode"] for e in events if e.kind == "host.mode"] == ["rescue"]
    outcomes = {(e.stage, e.outcome) for e in events if e.kind == "step.end"}
    assert ("rescue", "converged") in outcomes and ("disk", "applied") in outcomes


def test_an_inventory_pairing_one_servers_address_with_anothers_service_is_refused(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    """The case that should slip past the identity check: srv-051's OVH service, srv-052's
    address. Rebooting srv-051 while the steps run on srv-052 is refused before any reboot."""
    assert sandbox.api is not None
    one, other = sandbox.servers[50], sandbox.servers[51]
    assert (one.name, other.name) == ("srv-051", "srv-052")
    tasks_before = {s.service: sandbox.api.model.task_ids(s.service) for s in (one, other)}
    inventory = tmp_path / "mixed.yaml"
    inventory.write_text(
        "all:\n"
        f"  vars: {{ansible_user: {sandbox.hosts.login_user if sandbox.hosts else 'root'}, "
        f"ansible_port: {sandbox.port}}}\n"
        "  hosts:\n"
        f"    {one.name}: {{ansible_host: {other.address}, fleet: {{ovh_service: {one.service}}}}}\n"
    )
    plan = write_plan(tmp_path / "p.yaml", ROUND_TRIP.format(tid=new_tid()))
    proc = fleet("-i", str(inventory), "rollout", str(plan), "-o", "json", timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"is not the OVH address {one.address} of {one.service}" in proc.stderr
    assert "Traceback" not in proc.stderr
    for s in (one, other):  # nothing asked of OVH, both still on their disks
        assert sandbox.api.model.task_ids(s.service) == tasks_before[s.service]
        assert sandbox.api.server_mode(s.service) == "disk"
