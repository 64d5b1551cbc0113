"""The sandbox's sshd hosts, against real sshd processes and a real paramiko client."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from fleet.errors import ConfigError
from fleet.sandbox.hosts import (
    RESCUE_HOSTNAME,
    HostFleet,
    HostSpec,
    allocate_addresses,
    generate_ed25519,
    stop_recorded,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Key:
    pkey: paramiko.Ed25519Key
    public: str


@dataclass(frozen=True)
class Event:
    """Shaped like the fake OVH API's power events."""

    kind: str
    mode: str
    rescue_ssh_key: str | None = None
    reinstalled: bool = False
    installed_ssh_key: str | None = None


def _key(comment: str) -> Key:
    private, public = generate_ed25519(comment)
    return Key(paramiko.Ed25519Key.from_private_key(io.StringIO(private)), public)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _spec(fleet: HostFleet, name: str) -> HostSpec:
    return next(spec for spec in fleet.specs if spec.name == name)


@contextlib.contextmanager
def _transport(spec: HostSpec) -> Iterator[paramiko.Transport]:
    """An SSH transport to ``spec``, key exchange done, not authenticated."""
    sock = socket.create_connection((spec.address, spec.port), timeout=10)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        yield transport
    finally:
        transport.close()


@contextlib.contextmanager
def _login(fleet: HostFleet, name: str, key: Key) -> Iterator[paramiko.Transport]:
    with _transport(_spec(fleet, name)) as transport:
        transport.auth_publickey(fleet.login_user, key.pkey)
        yield transport


def _run(transport: paramiko.Transport, command: str) -> tuple[int, str, str]:
    channel = transport.open_session(timeout=10)
    channel.settimeout(30)
    channel.exec_command(command)
    out = channel.makefile("rb").read().decode()
    err = channel.makefile_stderr("rb").read().decode()
    return channel.recv_exit_status(), out, err


def _output(fleet: HostFleet, name: str, key: Key, command: str) -> str:
    with _login(fleet, name, key) as transport:
        status, out, err = _run(transport, command)
    assert status == 0, err
    return out.strip()


def _server_key(spec: HostSpec) -> tuple[str, str]:
    with _transport(spec) as transport:
        key = transport.get_remote_server_key()
        return key.get_name(), key.get_base64()


def _refused(spec: HostSpec) -> bool:
    try:
        socket.create_connection((spec.address, spec.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def _wait_closed(transport: paramiko.Transport) -> bool:
    deadline = time.monotonic() + 10
    while transport.is_active() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not transport.is_active()


@pytest.fixture
def runtime_root() -> Iterator[Path]:
    """Under /var/tmp: the unprivileged sshd account must be able to enter it."""
    path = Path(tempfile.mkdtemp(prefix="fleet-hosts-test-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def operator() -> Key:
    return _key("operator")


def _new_fleet(
    state_dir: Path, runtime_root: Path, operator: Key, specs: list[HostSpec]
) -> HostFleet:
    return HostFleet(
        specs,
        state_dir=state_dir,
        runtime_root=runtime_root,
        operator_public_key=operator.public,
        sandbox_id=f"test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def fleet3(tmp_path: Path, runtime_root: Path, operator: Key) -> Iterator[HostFleet]:
    a, b, c = allocate_addresses(3)
    specs = [
        HostSpec("ns101.ip-10-0-0.eu", a),
        HostSpec("ns102.ip-10-0-0.eu", b, hostname="web-2.example.net"),
        HostSpec("ns103.ip-10-0-0.eu", c),
    ]
    fleet = _new_fleet(tmp_path / "state", runtime_root, operator, specs)
    fleet.start()
    try:
        yield fleet
    finally:
        fleet.stop()


NAME = "ns101.ip-10-0-0.eu"


def test_session_identity_environment_and_account(fleet3: HostFleet, operator: Key) -> None:
    script = 'hostname; echo "$HOME"; echo "$PATH"; pwd; id -u; echo "$FLEET_SANDBOX_MODE"'
    for spec in fleet3.specs:
        with _login(fleet3, spec.name, operator) as transport:
            status, out, _ = _run(transport, script)
            host_key = transport.get_remote_server_key()
        assert status == 0
        hostname, home, path, cwd, uid, mode = out.splitlines()
        assert hostname == (spec.hostname or spec.name)
        assert home == cwd == str(fleet3.home_dir(spec.name, "disk"))
        assert path == f"{fleet3.host_dir(spec.name)}/bin:/usr/local/bin:/usr/bin:/bin"
        assert mode == "disk"
        assert (host_key.get_name(), host_key.get_base64()) == fleet3.disk_host_key(spec.name)
        if os.geteuid() == 0:
            assert int(uid) != 0
        assert fleet3.mode(spec.name) == "disk"
    lines = fleet3.known_hosts_lines()
    assert len(lines) == 3
    spec = _spec(fleet3, NAME)
    assert f"[{spec.address}]:{spec.port} {' '.join(fleet3.disk_host_key(NAME))}" in lines


def test_sftp_writes_into_home(fleet3: HostFleet, operator: Key) -> None:
    with _login(fleet3, NAME, operator) as transport:
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        with sftp.open("uploaded.txt", "w") as remote:
            remote.write("payload")
        sftp.close()
    assert (fleet3.home_dir(NAME, "disk") / "uploaded.txt").read_text() == "payload"


def test_disk_reboot_keeps_key_and_disk(fleet3: HostFleet, operator: Key) -> None:
    key_before = fleet3.disk_host_key(NAME)
    _output(fleet3, NAME, operator, "echo installed > marker")
    fleet3.power_off(NAME)
    assert fleet3.mode(NAME) is None
    assert _refused(_spec(fleet3, NAME))
    fleet3.power_on(NAME, "disk")
    assert _server_key(_spec(fleet3, NAME)) == key_before == fleet3.disk_host_key(NAME)
    assert _output(fleet3, NAME, operator, "cat marker") == "installed"


def test_rescue_boot_new_key_identity_and_access(fleet3: HostFleet, operator: Key) -> None:
    spec = _spec(fleet3, NAME)
    disk_key = fleet3.disk_host_key(NAME)
    _output(fleet3, NAME, operator, "echo installed > marker")
    rescue = _key("rescue")
    fleet3.power_off(NAME)
    fleet3.power_on(NAME, "rescue", rescue_ssh_key=rescue.public)
    first_rescue_key = _server_key(spec)
    assert first_rescue_key == fleet3.rescue_host_key(NAME)
    assert first_rescue_key != disk_key
    with pytest.raises(paramiko.AuthenticationException), _login(fleet3, NAME, operator):
        pass
    script = 'hostname; echo "$HOME"; echo "$FLEET_SANDBOX_MODE"; ls -A; echo x > scratch'
    assert _output(fleet3, NAME, rescue, script).splitlines() == [
        RESCUE_HOSTNAME,
        str(fleet3.home_dir(NAME, "rescue")),
        "rescue",
    ]
    fleet3.power_on(NAME, "rescue", rescue_ssh_key=rescue.public)  # a reboot: a new ramdisk
    assert _server_key(spec) not in (first_rescue_key, disk_key)
    assert _output(fleet3, NAME, rescue, "ls -A") == ""
    fleet3.power_on(NAME, "disk")
    assert _server_key(spec) == disk_key
    assert _output(fleet3, NAME, operator, "hostname; cat marker").splitlines() == [
        NAME,
        "installed",
    ]


def test_rescue_without_key_lets_nobody_in(fleet3: HostFleet, operator: Key) -> None:
    fleet3.power_on(NAME, "rescue")
    with pytest.raises(paramiko.AuthenticationException), _login(fleet3, NAME, operator):
        pass
    fleet3.power_on(NAME, "rescue", rescue_ssh_key=operator.public)
    assert _output(fleet3, NAME, operator, "hostname") == RESCUE_HOSTNAME


def test_reinstall_makes_new_disk_key_and_wipes_disk(fleet3: HostFleet, operator: Key) -> None:
    spec = _spec(fleet3, NAME)
    old_key = fleet3.disk_host_key(NAME)
    _output(fleet3, NAME, operator, "echo old > marker")
    fleet3.power_on(NAME, "disk", reinstalled=True)
    new_key = fleet3.disk_host_key(NAME)
    assert new_key != old_key
    assert _server_key(spec) == new_key
    assert f"[{spec.address}]:{spec.port} {' '.join(new_key)}" in fleet3.known_hosts_lines()
    assert _output(fleet3, NAME, operator, "ls -A") == ""
    installed = _key("installed")
    fleet3.power_on(NAME, "disk", reinstalled=True, installed_ssh_key=installed.public)
    assert _output(fleet3, NAME, installed, "hostname") == NAME
    with pytest.raises(paramiko.AuthenticationException), _login(fleet3, NAME, operator):
        pass


def test_on_power_adapter(fleet3: HostFleet, operator: Key) -> None:
    rescue = _key("rescue")
    fleet3.on_power(NAME, Event("off", "disk"))
    assert fleet3.mode(NAME) is None
    fleet3.on_power(NAME, Event("on", "rescue", rescue_ssh_key=rescue.public))
    assert fleet3.mode(NAME) == "rescue"
    assert _output(fleet3, NAME, rescue, "hostname") == RESCUE_HOSTNAME
    old_key = fleet3.disk_host_key(NAME)
    fleet3.on_power(NAME, Event("off", "rescue", rescue_ssh_key=rescue.public))
    fleet3.on_power(NAME, Event("on", "disk", reinstalled=True, installed_ssh_key=None))
    assert fleet3.mode(NAME) == "disk"
    assert fleet3.disk_host_key(NAME) != old_key
    assert _output(fleet3, NAME, operator, "hostname") == NAME


def test_power_off_kills_sessions(fleet3: HostFleet, operator: Key) -> None:
    spec = _spec(fleet3, NAME)
    listener = fleet3.pids()[NAME]
    with _login(fleet3, NAME, operator) as transport:
        channel = transport.open_session(timeout=10)
        channel.settimeout(10)
        # a foreground command and a daemon that left the session (setsid, reparented)
        channel.exec_command(
            "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!; echo $$; exec sleep 600"
        )
        stdout = channel.makefile("rb")
        daemon, shell = int(stdout.readline()), int(stdout.readline())
        assert _alive(daemon) and _alive(shell)
        fleet3.power_off(NAME)
        assert _wait_closed(transport)
    assert not any(_alive(pid) for pid in (listener, daemon, shell))
    assert NAME not in fleet3.pids()
    assert _refused(spec)


def test_refuse_connections(fleet3: HostFleet, operator: Key) -> None:
    spec = _spec(fleet3, NAME)
    with _login(fleet3, NAME, operator) as established:
        fleet3.refuse_connections(NAME, 2)
        for _ in range(2):
            with pytest.raises((paramiko.SSHException, OSError, EOFError)), _transport(spec):
                pass
        assert _output(fleet3, NAME, operator, "hostname") == NAME
        assert _run(established, "hostname")[1].strip() == NAME  # sessions went on
        fleet3.power_off(NAME)  # also ends sessions begun under the sshd refusal replaced
        assert _wait_closed(established)


def test_stop_kills_everything_and_keys_survive(
    tmp_path: Path, runtime_root: Path, operator: Key
) -> None:
    specs = [HostSpec(f"ns{i}.ip-10-0-1.eu", a) for i, a in enumerate(allocate_addresses(2))]
    state = tmp_path / "state"
    fleet = _new_fleet(state, runtime_root, operator, specs)
    fleet.start()
    try:
        name = specs[0].name
        pids = list(fleet.pids().values())
        out = _output(
            fleet, name, operator, "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!"
        )
        pids.append(int(out))
        disk_keys = [fleet.disk_host_key(spec.name) for spec in specs]
        assert fleet.runtime_dir.is_dir()
    finally:
        fleet.stop()
    assert not any(_alive(pid) for pid in pids)
    assert not fleet.runtime_dir.exists()
    assert all(_refused(spec) for spec in specs)
    again = _new_fleet(state, runtime_root, operator, specs)
    again.start()
    try:
        assert [again.disk_host_key(spec.name) for spec in specs] == disk_keys
        assert [_server_key(spec) for spec in specs] == disk_keys
    finally:
        again.stop()


def test_stop_recorded_cleans_up_after_a_lost_controller(
    fleet3: HostFleet, operator: Key, tmp_path: Path
) -> None:
    pids = list(fleet3.pids().values())
    pids.append(int(_output(fleet3, NAME, operator, "nohup sleep 600 >/dev/null 2>&1 & echo $!")))
    assert stop_recorded(tmp_path / "state") >= len(pids)
    assert not any(_alive(pid) for pid in pids)
    assert not fleet3.runtime_dir.exists()
    assert stop_recorded(tmp_path / "state") == 0


def test_allocate_skips_a_subnet_in_use(fleet3: HostFleet) -> None:
    used = {spec.address.split(".")[1] for spec in fleet3.specs}
    addresses = allocate_addresses(600)
    assert addresses[0].split(".")[1] not in used
    prefix = ".".join(addresses[0].split(".")[:2])
    assert addresses[0] == f"{prefix}.0.1"
    assert addresses[249] == f"{prefix}.0.250"
    assert addresses[250] == f"{prefix}.1.1"
    assert len(set(addresses)) == 600


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox account is used only as root")
def test_missing_sandbox_account_is_a_config_error(tmp_path: Path, operator: Key) -> None:
    with pytest.raises(ConfigError) as raised:
        HostFleet(
            [HostSpec("h", "127.199.0.1")],
            state_dir=tmp_path,
            operator_public_key=operator.public,
            sandbox_id="x",
            sandbox_user="fleet-no-such-account",
        )
    assert "bootstrap.sh" in (raised.value.hint or "")


def test_fifty_hosts(tmp_path: Path, runtime_root: Path, operator: Key) -> None:
    specs = [HostSpec(f"ns{i}.ip-10-0-2.eu", a) for i, a in enumerate(allocate_addresses(50))]
    fleet = _new_fleet(tmp_path / "state", runtime_root, operator, specs)
    began = time.monotonic()
    fleet.start()
    try:
        print(f"50 sandbox hosts started in {time.monotonic() - began:.2f} s")
        pids = list(fleet.pids().values())
        assert len(pids) == 50
        for spec in specs:
            with socket.create_connection((spec.address, spec.port), timeout=10) as conn:
                assert conn.recv(64).startswith(b"SSH-2.0-OpenSSH")
        for spec in specs[::17]:
            assert _output(fleet, spec.name, operator, "hostname") == spec.name
    finally:
        began = time.monotonic()
        fleet.stop()
        print(f"50 sandbox hosts stopped in {time.monotonic() - began:.2f} s")
    assert not any(_alive(pid) for pid in pids)
