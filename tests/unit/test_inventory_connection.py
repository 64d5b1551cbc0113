"""The inventory keys that say how to reach a host, in fleet's and Ansible's spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.inventory import load_inventory
from fleet.inventory.connection import proxy_jump

INVENTORY = """all:
  vars:
    ansible_ssh_common_args: "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
  children:
    behind:
      vars:
        ansible_ssh_common_args: '-o ProxyJump=ops@bastion.example.net:2222'
        ansible_become_password: "{{ lookup('env', 'WEB_SUDO') }}"
        ansible_timeout: 7
      hosts:
        web-1: {ansible_host: 10.0.0.1}
        web-2:
          ansible_host: 10.0.0.2
          fleet: {command_timeout: 30, sudo_password: "file:/run/secrets/sudo"}
    direct:
      hosts:
        db-1: {ansible_host: 192.0.2.5, fleet: {bastion: "jump1,admin@jump2:2200"}}
"""


def load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    return {h.name: h for h in load_inventory([path]).hosts}


def test_fleet_and_ansible_spellings_reach_the_endpoint(tmp_path: Path) -> None:
    hosts = load(tmp_path, INVENTORY)
    web1, web2, db1 = hosts["web-1"], hosts["web-2"], hosts["db-1"]
    endpoint = web1.endpoint  # type: ignore[attr-defined]
    assert endpoint.gateway is not None
    assert (endpoint.gateway.user, endpoint.gateway.address, endpoint.gateway.port) == (
        "ops",
        "bastion.example.net",
        2222,
    )
    assert endpoint.gateway.host == "bastion.example.net:2222"  # the name its key is pinned under
    assert endpoint.connect_timeout == 7.0 and endpoint.sudo_password == "env:WEB_SUDO"
    assert web2.sudo_password == "file:/run/secrets/sudo"  # type: ignore[attr-defined]
    assert web2.command_timeout == 30.0  # type: ignore[attr-defined]
    chain = db1.endpoint.gateway  # type: ignore[attr-defined]
    assert (chain.host, chain.user, chain.gateway.host) == ("jump2:2200", "admin", "jump1")
    assert hosts["db-1"].endpoint.connect_timeout is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fleet: {sudo_password: 'vault:x'}", "env:NAME or file:PATH"),
        ("fleet: {bastion: 'ssh://jump'}", "not a ProxyJump hop"),
        ("fleet: {connect_timeout: -1}", "positive number of seconds"),
        ("ansible_ssh_timeout: zero", "positive number of seconds"),
        ("ansible_ssh_common_args: '-o ProxyJump=a:b'", "not a ProxyJump hop"),
    ],
)
def test_bad_connection_keys_are_named(tmp_path: Path, line: str, message: str) -> None:
    text = f"all:\n  hosts:\n    h1:\n      ansible_host: 192.0.2.1\n      {line}\n"
    with pytest.raises(InventoryError, match=message) as caught:
        load(tmp_path, text)
    assert ":5" in str(caught.value) and "hunter2" not in str(caught.value)


def test_proxy_jump_is_read_from_ssh_options() -> None:
    assert proxy_jump("-o StrictHostKeyChecking=no -o ProxyJump=j1") == "j1"
    assert proxy_jump("-oProxyJump=u@j:22") == "u@j:22"
    assert proxy_jump("-J bastion -o Port=22") == "bastion"
    assert proxy_jump("-o ProxyCommand='ssh -W %h:%p j'") is None


def test_fleet_keys_win_over_ansible_spellings(tmp_path: Path) -> None:
    hosts = load(
        tmp_path,
        """all:
  vars:
    ansible_ssh_common_args: -J far
    ansible_timeout: 9
    fleet: {bastion: near, connect_timeout: 3}
  hosts:
    h1:
""",
    )
    host = hosts["h1"]
    assert (host.bastion, host.connect_timeout) == ("near", 3.0)  # type: ignore[attr-defined]
