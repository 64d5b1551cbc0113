"""Pure parts of the SSH transport: fingerprints, the host key decision, output capping, keys."""

from __future__ import annotations

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import paramiko
import pytest

from fleet.errors import ConfigError, HostKeyMismatch, Unreachable
from fleet.transport.base import Endpoint, KeyExpectation
from fleet.transport.connect import ConnectRetry, is_transient
from fleet.transport.hostkeys import check_host_key, fingerprint, host_key_algorithms
from fleet.transport.keys import load_key
from fleet.transport.runner import OutputTail
from fleet.transport.ssh import SshConnector

if TYPE_CHECKING:
    from pathlib import Path

DISK = KeyExpectation()
RESCUE_NEW = KeyExpectation(role="rescue", accept_new=True)


def keygen(path: Path, passphrase: str = "") -> tuple[str, str]:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "t", "-f", str(path)],
        check=True,
    )
    key_type, blob = path.with_suffix(".pub").read_text().split()[:2]
    return key_type, blob


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    root = tmp_path_factory.mktemp("keys")
    return [keygen(root / f"k{n}") for n in range(2)]


class NoHostKeys:
    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        return None

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None:
        raise AssertionError("nothing is pinned in unit tests")


# -- fingerprints ----------------------------------------------------------------------


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "k.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert fingerprint(*key) == listed


def test_fingerprint_rejects_a_type_the_blob_does_not_name(keys: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="the blob is a ssh-ed25519 key, not ssh-rsa"):
        fingerprint("ssh-rsa", keys[0][1])


def test_fingerprint_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a base64 public key blob"):
        fingerprint("ssh-ed25519", "not base64!")
    with pytest.raises(ValueError, match="truncated"):
        fingerprint("ssh-ed25519", "AAAAC3Nz")


# -- the host key decision -------------------------------------------------------------


def test_matching_pin_is_accepted_without_pinning_again(keys: list[tuple[str, str]]) -> None:
    assert check_host_key("h", DISK, keys[0], keys[0]) is False


def test_first_use_is_pinned_when_trusted(keys: list[tuple[str, str]]) -> None:
    assert check_host_key("h", DISK, None, keys[0]) is True


def test_first_use_is_refused_without_trust(keys: list[tuple[str, str]]) -> None:
    with pytest.raises(HostKeyMismatch, match=r"^h: no pinned disk host key and trust on first"):
        check_host_key("h", DISK, None, keys[0], trust_on_first_use=False)


def test_a_different_key_is_refused_with_both_fingerprints(keys: list[tuple[str, str]]) -> None:
    with pytest.raises(HostKeyMismatch) as caught:
        check_host_key("h", DISK, keys[0], keys[1])
    assert caught.value.host == "h"
    assert str(caught.value) == (
        f"h: disk host key mismatch: expected ssh-ed25519 {fingerprint(*keys[0])}, "
        f"got ssh-ed25519 {fingerprint(*keys[1])}: possible impersonation or an unplanned "
        "reinstall"
    )


def test_same_blob_with_another_type_is_a_mismatch(keys: list[tuple[str, str]]) -> None:
    with pytest.raises(HostKeyMismatch, match="unreadable key"):
        check_host_key("h", DISK, ("ssh-rsa", keys[0][1]), keys[0])


def test_accept_new_takes_any_key_and_pins_it(keys: list[tuple[str, str]]) -> None:
    assert check_host_key("h", RESCUE_NEW, keys[0], keys[1]) is True
    assert check_host_key("h", RESCUE_NEW, None, keys[1], trust_on_first_use=False) is True
    assert check_host_key("h", RESCUE_NEW, keys[1], keys[1]) is False


def test_pinned_key_type_is_offered_first() -> None:
    offered = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
    assert host_key_algorithms(offered, "ssh-rsa") == [
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
    ]
    assert host_key_algorithms(offered, "ecdsa-sha2-nistp256")[0] == "ecdsa-sha2-nistp256"
    assert host_key_algorithms(offered, "ssh-ed25519") == offered


# -- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (socket.gaierror(), True),
        (EOFError(), True),
        (paramiko.SSHException("Error reading SSH protocol banner"), True),
        (paramiko.AuthenticationException("denied"), False),
        (paramiko.BadAuthenticationType("denied", ["password"]), False),
        (HostKeyMismatch("changed", host="h"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_transient_connect_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


# -- output capping --------------------------------------------------------------------


def test_output_tail_keeps_the_last_bytes() -> None:
    tail = OutputTail(10)
    for n in range(100):
        tail.add(f"{n:03d}".encode())
    assert tail.truncated
    assert tail.text() == "6097098099"[-10:]


def test_output_tail_under_the_cap_is_whole_and_decodes_utf8() -> None:
    tail = OutputTail(10)
    tail.add("é".encode())
    tail.add(b"ok")
    assert (tail.text(), tail.truncated) == ("éok", False)


def test_output_tail_cut_inside_a_character_decodes_with_a_replacement() -> None:
    tail = OutputTail(4)
    tail.add("aé€".encode())  # 1 + 2 + 3 bytes: keeping 4 cuts "é" in half
    assert tail.text() == "\ufffd€"


# -- keys ------------------------------------------------------------------------------


def test_load_key_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot load SSH key .*/absent"):
        load_key(str(tmp_path / "absent"))


def test_load_key_reports_an_encrypted_key(tmp_path: Path) -> None:
    keygen(tmp_path / "locked", passphrase="secret-passphrase")
    with pytest.raises(ConfigError, match="is encrypted") as caught:
        load_key(str(tmp_path / "locked"))
    assert "secret-passphrase" not in str(caught.value)


def test_load_key_reports_garbage(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("not a key\n")
    with pytest.raises(ConfigError, match="cannot load SSH key"):
        load_key(str(tmp_path / "junk"))


def test_connector_loads_each_key_file_once(tmp_path: Path) -> None:
    keygen(tmp_path / "id")
    connector = SshConnector(NoHostKeys())
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(connector.key, [str(tmp_path / "id")] * 32))
    assert all(key is loaded[0] for key in loaded)
    assert connector.key(str(tmp_path / "." / "id")) is loaded[0]


def test_connector_uses_the_default_key_and_needs_one(tmp_path: Path) -> None:
    keygen(tmp_path / "id")
    ep = Endpoint(host="h", address="127.0.0.1")
    with pytest.raises(ConfigError, match=r"^h: no SSH key"):
        SshConnector(NoHostKeys()).open(ep)
    transport = SshConnector(NoHostKeys(), default_key_file=str(tmp_path / "id")).open(ep)
    assert transport.endpoint.key_file == str(tmp_path / "id")
    assert not transport.connected


class SteppingClock:
    """Time moves only when something sleeps."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime(2028, 2, 29, tzinfo=UTC) + timedelta(seconds=self.time)

    def monotonic(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_retries_stop_at_the_total_time(tmp_path: Path) -> None:
    keygen(tmp_path / "id")
    clock = SteppingClock()
    retry = ConnectRetry(attempts=100, total=2.0, initial=0.5, maximum=0.5, jitter=0.0)
    connector = SshConnector(
        NoHostKeys(), default_key_file=str(tmp_path / "id"), retry=retry, clock=clock
    )
    ep = Endpoint(host="h", address="127.0.0.1", port=_closed_port())
    with pytest.raises(Unreachable, match=r"connection refused \(after 5 attempts\)$"):
        connector.open(ep).connect()
    assert clock.sleeps == [0.5, 0.5, 0.5, 0.5]


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    keygen(tmp_path / "id")
    clock = SteppingClock()
    retry = ConnectRetry(attempts=6, total=1000.0, initial=1.0, maximum=5.0, jitter=0.0)
    connector = SshConnector(
        NoHostKeys(), default_key_file=str(tmp_path / "id"), retry=retry, clock=clock
    )
    ep = Endpoint(host="h", address="127.0.0.1", port=_closed_port())
    with pytest.raises(Unreachable):
        connector.open(ep).connect()
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
