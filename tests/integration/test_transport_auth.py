"""Real-world logins against the sandbox's OpenSSH hosts: ssh-agent, encrypted keys, ssh_config,
per-host connect timeouts. A real ``ssh-agent`` process is started for the agent cases."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet.errors import ConfigError, Unreachable
from fleet.sandbox.hosts import HostFleet, HostSpec, allocate_addresses, generate_ed25519
from fleet.transport.base import Endpoint
from fleet.transport.ssh import SshConnector
from tests.hostkeys import MemoryHostKeys

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The operator's key, plain and as an encrypted copy (same public half, ``.pub`` beside)."""
    root = tmp_path_factory.mktemp("auth-keys")
    private, public = generate_ed25519("operator")
    plain, locked = root / "plain", root / "locked"
    for path in (plain, locked):
        path.write_text(private)
        path.chmod(0o600)
        path.with_name(path.name + ".pub").write_text(public + "\n")
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", PASSPHRASE, "-f", str(locked)],
        check=True,
        capture_output=True,
    )
    return {"plain": plain, "locked": locked, "public": root / "plain.pub"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Iterator[HostFleet]:
    runtime_root = Path(tempfile.mkdtemp(prefix="fleet-auth-", dir="/var/tmp"))
    runtime_root.chmod(0o755)
    specs = [HostSpec(f"a{n:02d}", a) for n, a in enumerate(allocate_addresses(2))]
    fleet = HostFleet(
        specs,
        state_dir=tmp_path_factory.mktemp("auth-hosts"),
        runtime_root=runtime_root,
        operator_public_key=keys["public"].read_text().strip(),
        sandbox_id=f"auth-{uuid.uuid4().hex[:8]}",
    )
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)


def endpoint(hosts: HostFleet, key_file: Path | None) -> Endpoint:
    spec = hosts.specs[0]
    return Endpoint(
        "a00", spec.address, spec.port, hosts.login_user, str(key_file) if key_file else None
    )


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real ssh-agent on a socket of this test, in SSH_AUTH_SOCK; stopped afterwards."""
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.02)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        process.kill()
        process.wait(10)


def ssh_add(key: Path, passphrase: str, tmp_path: Path) -> None:
    """Load an encrypted key into the agent as a person would, the passphrase typed once."""
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    askpass.chmod(0o700)
    env = {
        "PATH": "/usr/bin:/bin",
        "SSH_AUTH_SOCK": str(tmp_path / "agent.sock"),
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": "none",
    }
    subprocess.run(
        ["ssh-add", str(key)], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL
    )


def test_an_encrypted_key_opens_with_the_passphrase(
    hosts: HostFleet, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    connector = SshConnector(MemoryHostKeys(), key_passphrase=PASSPHRASE)
    with connector.open(endpoint(hosts, keys["locked"])) as transport:
        assert transport.run("echo in").stdout == "in\n"


def test_an_encrypted_key_without_passphrase_or_agent_is_refused_clearly(
    hosts: HostFleet, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(ConfigError, match="is encrypted and no passphrase was given") as caught:
        SshConnector(MemoryHostKeys(), agent=True).open(endpoint(hosts, keys["locked"]))
    assert caught.value.hint is not None and "ssh-agent" in caught.value.hint
    with pytest.raises(ConfigError, match="wrong passphrase") as wrong:
        SshConnector(MemoryHostKeys(), key_passphrase="nope").open(endpoint(hosts, keys["locked"]))
    assert "nope" not in str(wrong.value) and PASSPHRASE not in str(caught.value)


def test_the_agent_holds_the_encrypted_key(
    hosts: HostFleet, keys: dict[str, Path], agent: Path, tmp_path: Path
) -> None:
    ssh_add(keys["locked"], PASSPHRASE, tmp_path)
    connector = SshConnector(MemoryHostKeys(), agent=True)
    with connector.open(endpoint(hosts, keys["locked"])) as transport:
        assert transport.run("echo via-agent").stdout == "via-agent\n"


def test_without_any_key_file_the_agent_keys_are_offered(
    hosts: HostFleet, keys: dict[str, Path], agent: Path, tmp_path: Path
) -> None:
    ep = endpoint(hosts, None)
    with pytest.raises(Unreachable, match=r"authentication failed for user .* with ssh-agent"):
        SshConnector(MemoryHostKeys(), agent=True).open(ep).connect()  # the agent is empty
    ssh_add(keys["locked"], PASSPHRASE, tmp_path)
    with SshConnector(MemoryHostKeys(), agent=True).open(ep) as transport:
        assert transport.run("echo any-agent-key").stdout == "any-agent-key\n"
    with pytest.raises(ConfigError, match="no SSH key"):
        SshConnector(MemoryHostKeys(), agent=False).open(ep)


def test_ssh_config_is_applied_when_asked(
    hosts: HostFleet, keys: dict[str, Path], tmp_path: Path
) -> None:
    spec = hosts.specs[1]
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host db-primary\n"
        f"  HostName {spec.address}\n  Port {spec.port}\n  User {hosts.login_user}\n"
        f"  IdentityFile {keys['plain']}\n  ConnectTimeout 7\n"
    )
    ep = Endpoint("db-primary", "db-primary")
    with SshConnector(MemoryHostKeys(), ssh_config=str(config)).open(ep) as transport:
        assert transport.endpoint.address == spec.address
        assert transport.endpoint.connect_timeout == 7.0
        assert transport.run("hostname").stdout == f"{spec.name}\n"
    with pytest.raises(ConfigError, match="no SSH key"):
        SshConnector(MemoryHostKeys()).open(ep)  # not asked: the file is not read


@pytest.mark.timeout(120)  # the connector's own 600 s timeout would run past it
def test_a_host_connect_timeout_bounds_a_silent_server(keys: dict[str, Path]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing)
    thread.start()
    address, port = listener.getsockname()
    ep = Endpoint("quiet", address, port, key_file=str(keys["plain"]), connect_timeout=0.5)
    try:
        with pytest.raises(Unreachable, match=r"^quiet: cannot connect to .*: SSH handshake"):
            SshConnector(MemoryHostKeys(), retry=None, connect_timeout=600).open(ep).connect()
    finally:
        stop.set()
        thread.join(10)
        for conn in held:
            conn.close()
        listener.close()
