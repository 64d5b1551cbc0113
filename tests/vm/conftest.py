"""VM tests: real QEMU machines built by scripts/vm-images.sh (the ``vm`` tox env builds them
first). Skipped, with the reason, when QEMU or the images are missing; never run by default
(``pytest tests/vm``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tenacity import retry, retry_if_result, stop_after_attempt, wait_fixed

from fleet.sandbox.hosts import generate_ed25519
from fleet.sandbox.vm_images import VmImages, default_cache, find_images, have_tools

# Read before the suite's autouse fixture strips FLEET_* from the environment.
VM_CACHE = default_cache()
VM_ACCEL = os.environ.get("FLEET_VM_ACCEL")


@pytest.fixture(scope="session")
def vm_images() -> VmImages:
    missing = have_tools()
    if missing:
        pytest.skip(f"VM tests need {', '.join(missing)} (scripts/vm-images.sh installs them)")
    images = find_images(VM_CACHE)
    if images is None:
        pytest.skip(f"no VM images in {VM_CACHE}: run scripts/vm-images.sh (as root) first")
    return images


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: str


def make_key(directory: Path, name: str) -> KeyPair:
    private, public = generate_ed25519(name)
    path = directory / name
    path.write_text(private)
    path.chmod(0o600)
    return KeyPair(path, public)


#: What OpenSSH prints when the connection ends before the handshake: nothing ran.
_NOT_CONNECTED = ("kex_exchange_identification", "Connection closed by", "Connection reset by")


def _not_connected(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 255 and any(s in done.stderr for s in _NOT_CONNECTED)


@retry(
    retry=retry_if_result(_not_connected),
    stop=stop_after_attempt(5),
    wait=wait_fixed(3),
    retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
)
def _ssh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


class Ssh:
    """The system OpenSSH client against one VM, with its own known_hosts file."""

    def __init__(self, address: str, port: int, known_hosts: Path) -> None:
        self.address, self.port, self.known_hosts = address, port, known_hosts

    def options(self, key: KeyPair, *, pin: bool) -> list[str]:
        return [
            "-i", str(key.private), "-p", str(self.port),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"StrictHostKeyChecking={'yes' if pin else 'accept-new'}",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def run(
        self, key: KeyPair, command: str, *, pin: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command``; a connection closed before the SSH handshake (a guest's sshd that
        answered its banner while still starting, under TCG) is tried again, a few times."""
        done = _ssh(["ssh", *self.options(key, pin=pin), f"root@{self.address}", command])
        if check and done.returncode != 0:
            raise AssertionError(f"ssh {command!r}: {done.returncode}: {done.stderr.strip()}")
        return done

    def host_key(self) -> tuple[str, str]:
        """(type, base64) the server presented, as recorded in known_hosts."""
        fields = self.known_hosts.read_text().split()
        return fields[1], fields[2]

    def pin(self, key_type: str, blob: str) -> None:
        self.known_hosts.write_text(f"[{self.address}]:{self.port} {key_type} {blob}\n")

    def forget(self) -> None:
        self.known_hosts.write_text("")


@pytest.fixture(scope="session")
def ssh_client() -> str:
    path = shutil.which("ssh")
    if path is None:
        pytest.skip("VM tests need the OpenSSH client (ssh)")
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KeyPair]]:
    directory = tmp_path_factory.mktemp("keys")
    yield {name: make_key(directory, name) for name in ("operator", "rescue", "stranger")}
