"""SshTransport against the sandbox's real OpenSSH hosts (fleet.sandbox.hosts)."""

from __future__ import annotations

import itertools
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet.errors import CommandTimeout, HostKeyMismatch, TransportError, Unreachable
from fleet.sandbox.hosts import (
    RESCUE_HOSTNAME,
    HostFleet,
    HostSpec,
    allocate_addresses,
    generate_ed25519,
)
from fleet.transport.base import Endpoint, KeyExpectation
from fleet.transport.ssh import (
    ConnectRetry,
    SshConnector,
    SshTransport,
    fingerprint,
)
from tests.hostkeys import MemoryHostKeys

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.integration

HOSTS = 26  # one fresh host per test: tests reboot, reinstall and power hosts off
CAP = 1 << 20
DISK = KeyExpectation()
RESCUE_NEW = KeyExpectation(role="rescue", accept_new=True)


class CountingClock:
    """Real time, but retry sleeps are counted (and shortened)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(min(seconds, 0.05))


def write_key(path: Path, comment: str) -> str:
    """A new ed25519 private key file at ``path``; returns its public line."""
    private, public = generate_ed25519(comment)
    path.write_text(private)
    path.chmod(0o600)
    return public


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def operator(keys_dir: Path) -> tuple[Path, str]:
    """The operator's key file and public line (authorised on every host)."""
    path = keys_dir / "operator"
    return path, write_key(path, "operator")


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, operator: tuple[Path, str]
) -> Iterator[HostFleet]:
    runtime_root = Path(tempfile.mkdtemp(prefix="fleet-transport-", dir="/var/tmp"))
    runtime_root.chmod(0o755)  # the unprivileged sshd account must enter it
    specs = [HostSpec(f"t{n:02d}", a) for n, a in enumerate(allocate_addresses(HOSTS))]
    fleet = HostFleet(
        specs,
        state_dir=tmp_path_factory.mktemp("hosts-state"),
        runtime_root=runtime_root,
        operator_public_key=operator[1],
        sandbox_id=f"transport-{uuid.uuid4().hex[:8]}",
    )
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)


_names = itertools.count()


@pytest.fixture
def name(hosts: HostFleet) -> str:
    """A host no other test has used, booted on disk."""
    n = next(_names)
    assert n < HOSTS, "raise HOSTS: every test needs a host of its own"
    return hosts.specs[n].name


@pytest.fixture
def host_keys() -> MemoryHostKeys:
    return MemoryHostKeys()


@pytest.fixture
def connector(host_keys: MemoryHostKeys) -> SshConnector:
    return SshConnector(host_keys)


@pytest.fixture
def endpoint(hosts: HostFleet, name: str, operator: tuple[Path, str]) -> Endpoint:
    return endpoint_for(hosts, name, operator[0])


def endpoint_for(hosts: HostFleet, name: str, key_file: Path) -> Endpoint:
    spec = next(spec for spec in hosts.specs if spec.name == name)
    return Endpoint(
        host=name,
        address=spec.address,
        port=spec.port,
        user=hosts.login_user,
        key_file=str(key_file),
    )


@pytest.fixture
def transport(connector: SshConnector, endpoint: Endpoint) -> Iterator[SshTransport]:
    with connector.open(endpoint) as opened:
        yield opened


def later(seconds: float, action: Callable[[], object]) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def established_to(endpoint: Endpoint) -> int:
    """How many TCP connections of this machine go to ``endpoint`` (from /proc/net/tcp)."""
    (value,) = struct.unpack("=I", socket.inet_aton(endpoint.address))
    remote = f"{value:08X}:{endpoint.port:04X}"
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[2] == remote and row[3] == "01")


# -- running commands ------------------------------------------------------------------


def test_run_returns_output_and_exit_codes(transport: SshTransport) -> None:
    ok = transport.run("echo step-1")
    failed = transport.run("echo oops >&2; exit 3")
    assert (ok.exit_code, ok.stdout, ok.ok) == (0, "step-1\n", True)
    assert (failed.exit_code, failed.stdout) == (3, "")
    # sshd may print a notice first (an account whose HOME does not exist): check the end
    assert failed.stderr.endswith("oops\n") and "oops" not in ok.stderr
    assert not failed.ok and not failed.truncated
    assert failed.command == "echo oops >&2; exit 3"


def test_commands_run_without_a_pty(transport: SshTransport, hosts: HostFleet, name: str) -> None:
    result = transport.run('test -t 0 && echo tty || echo notty; echo "$HOME"')
    assert result.stdout.splitlines() == ["notty", str(hosts.home_dir(name, "disk"))]


def test_big_output_keeps_the_tail(transport: SshTransport) -> None:
    result = transport.run("seq 1 400000")  # about 2.7 MB
    assert result.truncated
    assert len(result.stdout) == CAP
    assert result.stdout.endswith("\n399999\n400000\n")
    assert result.exit_code == 0


def test_both_streams_large_at_once_do_not_deadlock(transport: SshTransport) -> None:
    # stderr first, beyond the 2 MiB channel window: a reader that waits for stdout's end
    # before touching stderr stalls here until the timeout.
    result = transport.run(
        "head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o;"
        " echo; echo end >&2",
        timeout=60,
    )
    assert result.exit_code == 0 and result.truncated
    assert len(result.stdout) == CAP and set(result.stdout.rstrip("\n")) == {"o"}
    assert len(result.stderr) == CAP and result.stderr.endswith("eeeend\n")


def test_output_below_the_cap_is_whole(transport: SshTransport) -> None:
    result = transport.run("seq 1 100000")
    assert not result.truncated
    assert result.stdout.splitlines() == [str(n) for n in range(1, 100001)]


def test_command_timeout_closes_the_channel_and_keeps_the_connection(
    transport: SshTransport, endpoint: Endpoint
) -> None:
    with pytest.raises(CommandTimeout) as caught:
        transport.run("sleep 30", timeout=0.5)
    assert str(caught.value) == (
        f"{endpoint.host}: 'sleep 30' still running after 0.5 s; its channel was closed"
    )
    assert transport.run("echo after").stdout == "after\n"


def test_one_connection_serves_every_command(transport: SshTransport, endpoint: Endpoint) -> None:
    # $SSH_CONNECTION holds the client's source port: one TCP connection, one port.
    seen = {transport.run("echo $SSH_CONNECTION").stdout for _ in range(6)}
    assert len(seen) == 1
    assert established_to(endpoint) == 1


def test_the_connection_is_fabrics_and_shared_with_the_fast_path(
    transport: SshTransport, endpoint: Endpoint
) -> None:
    import fabric

    fast = transport.run("echo $SSH_CONNECTION").stdout
    connection = transport.connection
    assert isinstance(connection, fabric.Connection)
    via_fabric = connection.run("echo $SSH_CONNECTION", hide=True, in_stream=False)
    assert via_fabric.stdout == fast  # same TCP connection: same client port
    assert established_to(endpoint) == 1


def test_exit_code_is_minus_one_when_the_command_dies_of_a_signal(
    transport: SshTransport,
) -> None:
    result = transport.run("kill -9 $$")
    assert result.exit_code == -1
    assert transport.run("true").exit_code == 0


def test_connection_lost_while_running(
    transport: SshTransport, hosts: HostFleet, name: str
) -> None:
    started = hosts.home_dir(name, "disk") / "started"

    def power_cut_once_running() -> None:
        for _ in range(600):  # at most 30 s
            if started.exists():
                break
            time.sleep(0.05)
        hosts.power_off(name)

    power_cut = later(0, power_cut_once_running)
    try:
        with pytest.raises(TransportError, match="connection lost while running 'touch started"):
            transport.run("touch started; sleep 20", timeout=60)
    finally:
        power_cut.join()
    with pytest.raises(Unreachable, match="connection lost before running"):
        transport.run("true")


# -- host keys -------------------------------------------------------------------------


def test_first_use_pins_then_a_changed_key_is_refused_before_anything_runs(
    connector: SshConnector,
    endpoint: Endpoint,
    host_keys: MemoryHostKeys,
    hosts: HostFleet,
    name: str,
) -> None:
    with connector.open(endpoint) as first:
        first.run("true")
        assert first.presented_key == hosts.disk_host_key(name)
    old = hosts.disk_host_key(name)
    assert host_keys.keys == {(name, "disk"): old}

    hosts.power_on(name, "disk", reinstalled=True)  # a reinstall fleet did not make
    new = hosts.disk_host_key(name)
    marker = hosts.home_dir(name, "disk") / "marker"
    with connector.open(endpoint) as second, pytest.raises(HostKeyMismatch) as caught:
        second.run(f"touch {marker}")
    message = str(caught.value)
    assert message.startswith(f"{name}: disk host key mismatch")
    assert f"expected ssh-ed25519 {fingerprint(*old)}" in message
    assert f"got ssh-ed25519 {fingerprint(*new)}" in message
    assert "possible impersonation or an unplanned reinstall" in message
    assert caught.value.hint is not None and "fleet hostkeys" in caught.value.hint
    assert not marker.exists()
    assert host_keys.keys == {(name, "disk"): old}


def test_the_key_is_checked_before_authentication(
    connector: SshConnector,
    endpoint: Endpoint,
    host_keys: MemoryHostKeys,
    hosts: HostFleet,
    name: str,
) -> None:
    connector.open(endpoint).connect()
    hosts.power_on(name, "rescue")  # nobody can log in: no rescueSshKey
    # with the disk expectation the rescue key is refused, not our login
    with pytest.raises(HostKeyMismatch, match="disk host key mismatch"):
        connector.open(endpoint).connect()


def test_unknown_key_without_trust_on_first_use_is_refused(
    endpoint: Endpoint, host_keys: MemoryHostKeys
) -> None:
    connector = SshConnector(host_keys, trust_on_first_use=False)
    with pytest.raises(HostKeyMismatch, match="no pinned disk host key"):
        connector.open(endpoint).connect()
    assert host_keys.keys == {}


def test_accept_new_pins_the_new_role_and_keeps_the_disk_pin(
    connector: SshConnector,
    endpoint: Endpoint,
    host_keys: MemoryHostKeys,
    hosts: HostFleet,
    name: str,
    operator: tuple[Path, str],
) -> None:
    connector.open(endpoint).connect()
    disk_key = hosts.disk_host_key(name)
    hosts.power_on(name, "rescue", rescue_ssh_key=operator[1])
    rescue_key = hosts.rescue_host_key(name)

    with connector.open(endpoint, RESCUE_NEW) as transport:
        assert transport.run("hostname").stdout == f"{RESCUE_HOSTNAME}\n"
        assert not transport.expect.accept_new  # accepted once, then pinned
    assert host_keys.keys == {(name, "disk"): disk_key, (name, "rescue"): rescue_key}
    with pytest.raises(HostKeyMismatch, match="disk host key mismatch"):
        connector.open(endpoint).connect()

    hosts.power_on(name, "disk")  # back to the installed system: its pin still holds
    with connector.open(endpoint) as transport:
        assert transport.run("hostname").stdout == f"{name}\n"


def test_accept_new_replaces_an_old_pin_of_that_role(
    connector: SshConnector,
    endpoint: Endpoint,
    host_keys: MemoryHostKeys,
    hosts: HostFleet,
    name: str,
    operator: tuple[Path, str],
) -> None:
    hosts.power_on(name, "rescue", rescue_ssh_key=operator[1])
    first = hosts.rescue_host_key(name)
    connector.open(endpoint, RESCUE_NEW).connect()
    hosts.power_on(name, "rescue", rescue_ssh_key=operator[1])  # every rescue boot: a new key
    second = hosts.rescue_host_key(name)
    assert first != second
    connector.open(endpoint, RESCUE_NEW).connect()
    assert host_keys.keys == {(name, "rescue"): second}


# -- connecting: retries and errors ----------------------------------------------------


def test_refused_connections_are_retried(
    endpoint: Endpoint, host_keys: MemoryHostKeys, hosts: HostFleet, name: str
) -> None:
    clock = CountingClock()
    retry = ConnectRetry(attempts=5, initial=0.01, maximum=0.05, jitter=0.01)
    connector = SshConnector(host_keys, retry=retry, clock=clock)
    hosts.refuse_connections(name, 2)
    with connector.open(endpoint) as transport:
        assert transport.run("echo up").stdout == "up\n"
    assert len(clock.sleeps) == 2


def test_retries_are_bounded(
    endpoint: Endpoint, host_keys: MemoryHostKeys, hosts: HostFleet, name: str
) -> None:
    hosts.power_off(name)
    clock = CountingClock()
    retry = ConnectRetry(attempts=3, initial=0.01, maximum=0.05, jitter=0.01)
    connector = SshConnector(host_keys, retry=retry, clock=clock)
    with pytest.raises(Unreachable) as caught:
        connector.open(endpoint).connect()
    assert str(caught.value) == (
        f"{name}: cannot connect to {endpoint.address}:{endpoint.port} as {endpoint.user}:"
        " connection refused (after 3 attempts)"
    )
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert len(clock.sleeps) == 2


def test_authentication_failure_is_not_retried_and_names_user_and_key(
    hosts: HostFleet, name: str, keys_dir: Path, host_keys: MemoryHostKeys
) -> None:
    stranger = keys_dir / "stranger"
    write_key(stranger, "stranger")
    clock = CountingClock()
    connector = SshConnector(host_keys, clock=clock)
    with pytest.raises(Unreachable) as caught:
        connector.open(endpoint_for(hosts, name, stranger)).connect()
    message = str(caught.value)
    assert message.startswith(f"{name}: authentication failed for user {hosts.login_user!r}")
    assert str(stranger) in message
    assert clock.sleeps == []
    assert host_keys.keys == {}  # a host we could not log into is not pinned


def test_handshake_cut_short_is_retried_then_reported(
    operator: tuple[Path, str], host_keys: MemoryHostKeys
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address, port = listener.getsockname()

    def accept_and_close() -> None:
        for _ in range(2):
            conn, _peer = listener.accept()
            conn.close()

    closer = threading.Thread(target=accept_and_close)
    closer.start()
    retry = ConnectRetry(attempts=2, initial=0.01, maximum=0.01, jitter=0.0)
    connector = SshConnector(host_keys, retry=retry, clock=CountingClock())
    ep = Endpoint(host="h1", address=address, port=port, key_file=str(operator[0]))
    try:
        with pytest.raises(Unreachable, match=r"SSH handshake failed.*\(after 2 attempts\)"):
            connector.open(ep).connect()
    finally:
        closer.join(timeout=10)
        listener.close()


# -- waiting for a host to come back ---------------------------------------------------


def test_wait_for_ssh_across_a_reboot(
    connector: SshConnector, endpoint: Endpoint, hosts: HostFleet, name: str
) -> None:
    connector.open(endpoint).connect()
    hosts.power_off(name)
    boot = later(1.0, lambda: hosts.power_on(name, "disk"))
    progress: list[str] = []
    try:
        transport = connector.wait_for_ssh(
            endpoint, timeout=30, poll_interval=0.2, progress=progress.append
        )
    finally:
        boot.join()
    with transport:
        assert transport.run("echo back").stdout == "back\n"
    assert progress and all(line.startswith(f"{name}: waiting for SSH (") for line in progress)


def test_wait_for_rescue_pins_only_once_the_identity_check_passes(
    connector: SshConnector,
    endpoint: Endpoint,
    host_keys: MemoryHostKeys,
    hosts: HostFleet,
    name: str,
    operator: tuple[Path, str],
) -> None:
    connector.open(endpoint).connect()
    disk_key = hosts.disk_host_key(name)
    checked: list[str] = []

    def in_rescue(transport: SshTransport) -> bool:
        checked.append(transport.run("hostname").stdout.strip())
        assert (name, "rescue") not in host_keys.keys
        if checked[-1] == name:
            # the reboot into rescue was asked for, but the installed system still answered
            # (with a key accept_new takes): only the identity check tells them apart
            hosts.power_on(name, "rescue", rescue_ssh_key=operator[1])
        return checked[-1] == RESCUE_HOSTNAME

    transport = connector.wait_for_ssh(
        endpoint, RESCUE_NEW, timeout=30, poll_interval=0.2, identity_check=in_rescue
    )
    transport.close()
    assert checked == [name, RESCUE_HOSTNAME]
    assert host_keys.keys == {
        (name, "disk"): disk_key,
        (name, "rescue"): hosts.rescue_host_key(name),
    }


def test_wait_for_ssh_gives_up_on_a_failing_identity_without_pinning(
    connector: SshConnector, endpoint: Endpoint, host_keys: MemoryHostKeys
) -> None:
    with pytest.raises(TransportError, match="never passed the identity check within 3 s"):
        connector.wait_for_ssh(
            endpoint, RESCUE_NEW, timeout=3, poll_interval=0.5, identity_check=lambda _t: False
        )
    assert host_keys.keys == {}


def test_wait_for_ssh_reports_a_key_that_stays_wrong(
    connector: SshConnector,
    endpoint: Endpoint,
    host_keys: MemoryHostKeys,
    hosts: HostFleet,
    name: str,
) -> None:
    connector.open(endpoint).connect()
    hosts.power_on(name, "disk", reinstalled=True)
    with pytest.raises(HostKeyMismatch, match="did not present the expected disk host key"):
        connector.wait_for_ssh(endpoint, timeout=2, poll_interval=0.5)


def test_wait_for_ssh_gives_up_on_a_host_that_stays_down(
    connector: SshConnector, endpoint: Endpoint, hosts: HostFleet, name: str
) -> None:
    hosts.power_off(name)
    with pytest.raises(Unreachable, match=r"not reachable over SSH within 2 s.*connection refused"):
        connector.wait_for_ssh(endpoint, timeout=2, poll_interval=0.5)
