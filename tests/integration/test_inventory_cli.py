"""``fleet inventory`` against the sandbox: its Ansible inventory, OVH's data for ``hw:``
selectors through the cache (real HTTP to the fake OVH API), and ``import --ovh``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.inventory import load_inventory
from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli

pytestmark = pytest.mark.integration


def test_hw_selectors_need_no_hand_kept_group(fleet: FleetCli, sandbox: Sandbox) -> None:
    hybrid = sorted(s.name for s in sandbox.servers if s.hybrid)
    answers = 2 * len(sandbox.servers)  # each server's record and its hardware
    first = fleet("inventory", "list", "-l", "hw:hybrid", "--json", check=0)
    assert sorted(h["name"] for h in json.loads(first.stdout)) == hybrid
    assert f"OVH data: {answers} answers fetched now (cached in " in first.stderr
    again = fleet("inventory", "list", "-l", "hybrid,&dc:gra*", check=0)
    assert f"OVH data: {answers} answers from the cache, up to " in again.stderr
    assert "fetched now" not in again.stderr
    shown = {line.split()[0] for line in again.stdout.splitlines()[1:]}
    gra = {s.name for s in sandbox.servers if s.hybrid and s.datacenter.startswith("gra")}
    assert shown == gra
    refreshed = fleet("inventory", "list", "-l", "!hw:hybrid", "--refresh", check=0)
    assert f"{answers} answers fetched now" in refreshed.stderr
    assert {line.split()[0] for line in refreshed.stdout.splitlines()[1:]} == {
        s.name for s in sandbox.servers if not s.hybrid
    }


def test_selection_errors_are_one_line_and_exit_3(fleet: FleetCli) -> None:
    proc = fleet("inventory", "list", "-l", "hw:hdd_cont>2")
    assert proc.returncode == 3
    assert proc.stderr.splitlines()[0] == "error: --limit 'hw:hdd_cont>2': unknown hardware field"
    assert "did you mean 'hdd_count'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_writes_the_account_as_an_inventory(
    fleet: FleetCli, sandbox: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "ovh.yaml"
    fleet("inventory", "import", "--ovh", "-o", str(out), check=0)
    inventory = load_inventory([out])
    assert {h.service_name for h in inventory.hosts} == {s.service for s in sandbox.servers}
    by_service = {s.service: s for s in sandbox.servers}
    for host in inventory.hosts:
        server = by_service[host.name]
        assert (host.address, host.datacenter, host.rack) == (
            server.address,
            server.datacenter,
            server.rack,
        )
    again = fleet("inventory", "import", "--ovh", "-o", str(out))
    assert again.returncode == 3 and "exists" in again.stderr
    fleet("inventory", "import", "--ovh", "-o", str(out), "--force", check=0)
