"""Through a bastion: sandbox servers in a network namespace of their own, a jump host (a real
sshd) as the only way in, fleet's connections through it as Fabric gateways; and sudo with a
password read from its secret source."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet.errors import ConfigError, HostKeyMismatch
from fleet.sandbox.hosts import HostFleet, HostSpec, allocate_addresses, generate_ed25519
from fleet.sandbox.netinfo import proc_endpoint
from fleet.transport.base import Endpoint, parse_jump
from fleet.transport.ssh import SshConnector
from tests.hostkeys import MemoryHostKeys

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the hosts' network namespace needs root"),
]


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("bastion-keys") / "operator"
    private, public = generate_ed25519("operator")
    path.write_text(private)
    path.chmod(0o600)
    return path, public


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, key_file: tuple[Path, str]
) -> Iterator[HostFleet]:
    runtime_root = Path(tempfile.mkdtemp(prefix="fleet-bastion-", dir="/var/tmp"))
    runtime_root.chmod(0o755)
    addresses = allocate_addresses(4)
    specs = [HostSpec(f"b{n:02d}", a) for n, a in enumerate(addresses[:3])]
    fleet = HostFleet(
        specs,
        state_dir=tmp_path_factory.mktemp("bastion-hosts"),
        runtime_root=runtime_root,
        operator_public_key=key_file[1],
        sandbox_id=f"bastion-{uuid.uuid4().hex[:8]}",
        jump=HostSpec("jump", addresses[3]),
    )
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)


def through_jump(hosts: HostFleet, name: str, key: Path, **extra: object) -> Endpoint:
    jump = hosts.jump
    assert jump is not None
    gateway = parse_jump(f"{hosts.login_user}@{jump.address}:{jump.port}", key_file=str(key))
    spec = next(spec for spec in hosts.specs if spec.name == name)
    return Endpoint(
        name, spec.address, spec.port, hosts.login_user, str(key), gateway=gateway, **extra
    )  # type: ignore[arg-type]


def test_the_servers_are_out_of_direct_reach(hosts: HostFleet) -> None:
    for spec in hosts.specs:
        with pytest.raises(OSError), socket.create_connection((spec.address, spec.port), 2):
            pass
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert any(line.startswith("fleet-bastion-") for line in namespaces.splitlines())


def test_a_rollout_connection_goes_through_the_jump_host_and_pins_both_keys(
    hosts: HostFleet, key_file: tuple[Path, str]
) -> None:
    keys = MemoryHostKeys()
    connector = SshConnector(keys)
    jump = hosts.jump
    assert jump is not None
    try:
        for spec in hosts.specs:
            with connector.open(through_jump(hosts, spec.name, key_file[0])) as transport:
                assert transport.run("hostname").stdout == f"{spec.name}\n"
                assert transport.connection.gateway is not None  # Fabric's own gateway
        # one connection to the jump host, shared by the hosts behind it
        remote = proc_endpoint(jump.address, jump.port)
        with open("/proc/net/tcp") as table:
            rows = [row.split() for row in table.readlines()[1:]]
        assert sum(1 for row in rows if row[2] == remote and row[3] == "01") == 1
    finally:
        connector.close()
    bastion_name = f"{jump.address}:{jump.port}"
    assert keys.keys == {
        (bastion_name, "disk"): hosts.jump_host_key(),
        **{(spec.name, "disk"): hosts.disk_host_key(spec.name) for spec in hosts.specs},
    }


def test_a_wrong_jump_host_key_stops_everything_before_login(
    hosts: HostFleet, key_file: tuple[Path, str]
) -> None:
    keys = MemoryHostKeys()
    jump = hosts.jump
    assert jump is not None
    keys.pin_key(f"{jump.address}:{jump.port}", "disk", *hosts.disk_host_key("b00"))
    connector = SshConnector(keys, retry=None)
    marker = hosts.home_dir("b01", "disk") / "ran"
    with pytest.raises(HostKeyMismatch) as caught:
        connector.open(through_jump(hosts, "b01", key_file[0])).run(f"touch {marker}")
    assert str(caught.value).startswith(f"b01: bastion {jump.address}:{jump.port} (")
    assert "disk host key mismatch" in str(caught.value)
    assert not marker.exists() and ("b01", "disk") not in keys.keys


def test_a_host_behind_the_jump_host_comes_back_after_a_power_cycle(
    hosts: HostFleet, key_file: tuple[Path, str]
) -> None:
    connector = SshConnector(MemoryHostKeys())
    endpoint = through_jump(hosts, "b02", key_file[0])
    try:
        connector.open(endpoint).connect()
        hosts.power_off("b02")
        hosts.power_on("b02", "disk")
        with connector.wait_for_ssh(endpoint, timeout=30, poll_interval=0.2) as transport:
            assert transport.run("hostname").stdout == "b02\n"
    finally:
        connector.close()


def test_sudo_answers_the_prompt_with_the_password_from_its_source(
    hosts: HostFleet, key_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "s3cret pass'word"
    hosts.set_sudo_password("b00", secret)
    monkeypatch.setenv("FLEET_TEST_SUDO", secret)
    (tmp_path / "wrong").write_text("not it\n")
    connector = SshConnector(MemoryHostKeys())
    try:
        good = through_jump(hosts, "b00", key_file[0], sudo_password="env:FLEET_TEST_SUDO")
        with connector.open(good) as transport:
            result = transport.sudo("echo as $SUDO_USER; cat")  # cat: stdin ends after the answer
            assert result.ok, result.stderr
            assert result.stdout == f"as {hosts.login_user}\n"
            assert secret not in result.stdout + result.stderr + result.command
            fabric_run = transport.connection.sudo(
                "echo via-fabric", password=secret, hide=True, in_stream=False
            )
            assert fabric_run.stdout.strip().endswith("via-fabric")
        bad = through_jump(hosts, "b00", key_file[0], sudo_password=f"file:{tmp_path / 'wrong'}")
        with connector.open(bad) as transport:
            refused = transport.sudo("echo never")
            assert not refused.ok and "never" not in refused.stdout
        unset = through_jump(hosts, "b00", key_file[0], sudo_password="env:FLEET_TEST_UNSET")
        with (
            connector.open(unset) as transport,
            pytest.raises(ConfigError, match="FLEET_TEST_UNSET is not set"),
        ):
            transport.sudo("true")
    finally:
        hosts.set_sudo_password("b00", None)
        connector.close()
