"""fleet against Ansible on one inventory: the assertions shared by the inventory tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleet.inventory import Host, Inventory, load_inventory
from tests.ansible import oracle


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def assert_same_as_ansible(paths: list[Path], cwd: Path) -> Inventory:
    inventory = load_inventory(paths)
    listing = oracle.inventory_list(paths, cwd)
    groups = oracle.membership(listing)
    assert {h.name for h in inventory.hosts} == groups["all"]
    for name, members in groups.items():
        assert set(inventory.groups.get(name, ())) == members, f"group {name}"
    for name, members in inventory.groups.items():
        assert set(members) == groups.get(name, set()), f"group {name}"
    hostvars = listing["_meta"]["hostvars"]
    for host in inventory.hosts:
        assert _json(host.vars) == _json(oracle.plain(hostvars.get(host.name, {}))), host.name
    connections = oracle.connections(paths, cwd)
    for host in inventory.hosts:
        assert _endpoint(host) == _ansible_endpoint(host.name, connections[host.name], cwd)
    return inventory


def _endpoint(host: Host) -> tuple[Any, ...]:
    return (host.address, host.port, host.user, host.key_file)


def _ansible_endpoint(name: str, answer: dict[str, Any], cwd: Path) -> tuple[Any, ...]:
    """Ansible's answer with fleet's defaults where Ansible leaves it to ssh (port 22, root)."""
    address = answer["address"]
    key = answer["key_file"]
    return (
        name if address in (None, "inventory_hostname") else address,
        int(answer["port"] or 22),
        answer["user"] or "root",
        None if key is None else str(Path(cwd, os.path.expanduser(key)).absolute()),
    )
