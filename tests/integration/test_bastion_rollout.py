"""A rollout through a bastion: the sandbox's servers live in a network namespace of their own,
its jump host (a real sshd) is the only way to them, and the inventory names it as their
bastion. The rollout works through it, and the host keys of both are pinned."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from tests.conftest import FleetCli

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the servers' network namespace needs root"),
]

PLAN = """
name: through-the-bastion
stages:
  - name: setup
    steps:
      - name: where
        apply: echo "on $(hostname) via $SSH_CONNECTION"
      - name: config
        template: app.j2
        dest: "{root}/{{{{ host.name }}}}/disk/app.conf"
      - name: as root
        sudo: true
        apply: echo "sudo ran it for $SUDO_USER"
  - name: code
    kind: python
    call: tasks.py:hello
"""
SUDO_PASSWORD = "jump-sudo-pass"


@pytest.fixture(scope="module")
def jumped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    runtime_root = Path(tempfile.mkdtemp(prefix="fleet-jump-", dir="/var/tmp"))
    runtime_root.chmod(0o755)
    box = Sandbox(
        tmp_path_factory.mktemp("jump-sandbox"),
        servers=4,
        jump_host=True,
        runtime_root=runtime_root,
    )
    box.start()
    try:
        yield box
    finally:
        box.stop()
        runtime_root.rmdir()


def test_a_rollout_goes_through_the_jump_host_and_pins_both_keys(
    jumped: Sandbox, tmp_path: Path
) -> None:
    assert jumped.hosts is not None and jumped.jump_address is not None
    for server in jumped.servers:  # out of direct reach
        with pytest.raises(OSError), socket.create_connection((server.address, jumped.port), 2):
            pass
    (tmp_path / "app.j2").write_text("name = {{ host.name }}\n")
    (tmp_path / "tasks.py").write_text(
        "def hello(c):\n    c.run('echo hello from $(hostname)')\n    return 'changed'\n"
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(root=jumped.hosts.runtime_dir))
    # sudo asks for a password, named in the inventory by its source only
    for server in jumped.servers:
        jumped.hosts.set_sudo_password(server.name, SUDO_PASSWORD)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        (jumped.dir / "inventory.yaml")
        .read_text()
        .replace(
            "          bastion:",
            "          sudo_password: env:SANDBOX_SUDO_PASSWORD\n          bastion:",
        )
    )
    fleet = FleetCli(tmp_path / "state", jumped.config_path)
    os.environ["SANDBOX_SUDO_PASSWORD"] = SUDO_PASSWORD
    try:
        fleet("-i", str(inventory), "rollout", str(plan), "--batches", "1,100%", check=0)
    finally:
        del os.environ["SANDBOX_SUDO_PASSWORD"]
    for server in jumped.servers:
        conf = jumped.hosts.home_dir(server.name, "disk") / "app.conf"
        assert conf.read_text() == f"name = {server.name}\n"
    run_id = fleet("status", "--json", check=0).stdout.split('"id": "')[1].split('"')[0]
    shown = fleet("status", run_id, "srv-002", check=0).stdout
    assert "hello from" in shown and "via 127." in shown
    assert f"sudo ran it for {jumped.hosts.login_user}" in shown
    state = (tmp_path / "state").glob("fleet.db*")
    assert not any(SUDO_PASSWORD.encode() in path.read_bytes() for path in state)
    store = open_store(tmp_path / "state" / "fleet.db")
    try:
        jump_key = store.pinned_key(f"{jumped.jump_address}:{jumped.port}", "disk")
        assert jump_key == jumped.hosts.jump_host_key()
        for server in jumped.servers:
            assert store.pinned_key(server.name, "disk") == jumped.hosts.disk_host_key(server.name)
    finally:
        store.close()
