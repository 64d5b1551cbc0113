"""What a set of sandbox hosts is made of on disk: host specs, the runtime directory, and the
record that lets a later process clean up after one that crashed (:func:`stop_recorded`)."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import ConfigError, UsageError
from fleet.sandbox.account import Account, check_traversable, make_dir, rmtree, write_file
from fleet.sandbox.netinfo import proc_endpoint
from fleet.sandbox.netns import Namespace
from fleet.sandbox.procs import kill_sandbox_processes

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

SSHD = Path("/usr/sbin/sshd")  # sshd re-executes itself per connection: an absolute path
SANDBOX_USER = "fleet-sandbox"
DEFAULT_RUNTIME_ROOT = Path("/var/tmp/fleet-sandbox")
MARKER_VAR = "FLEET_SANDBOX_HOST"
RECORD_FILE = "hosts.json"
RUNTIME_TAG = ".fleet-sandbox-runtime"  # only a directory holding this file is ever removed
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
SAFE_PATH = re.compile(r"[A-Za-z0-9/._+-]+")  # sshd_config and SetEnv take no quoting here


@dataclass(frozen=True)
class HostSpec:
    """One sandbox host. ``hostname`` is what ``hostname`` prints on disk (default: ``name``)."""

    name: str
    address: str
    port: int = 2222
    hostname: str | None = None

    @property
    def identity(self) -> str:
        return self.hostname or self.name


def validate_specs(specs: Sequence[HostSpec]) -> None:
    names: set[str] = set()
    endpoints: set[tuple[str, int]] = set()
    for spec in specs:
        if not NAME.fullmatch(spec.name) or spec.name in ("rescue", "disk"):
            raise UsageError(f"{spec.name!r}: not a usable host name ([A-Za-z0-9._-])")
        if spec.hostname is not None and not HOSTNAME.fullmatch(spec.hostname):
            raise UsageError(f"{spec.name}: not a hostname: {spec.hostname!r}")
        try:
            loopback = ipaddress.IPv4Address(spec.address).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageError(f"{spec.name}: {spec.address!r} is not an IPv4 loopback address")
        if not 1 <= spec.port <= 65535:
            raise UsageError(f"{spec.name}: bad port {spec.port}")
        if spec.name in names or (spec.address, spec.port) in endpoints:
            raise UsageError(f"{spec.name}: duplicate name or address {spec.address}:{spec.port}")
        names.add(spec.name)
        endpoints.add((spec.address, spec.port))


def marker(sandbox_id: str, name: str) -> bytes:
    """The ``VAR=value`` every session of a host gets from sshd's SetEnv."""
    return f"{MARKER_VAR}={sandbox_id}/{name}".encode()


def prepare_runtime_dir(
    runtime_root: Path, runtime_dir: Path, state_dir: Path, sandbox_id: str, account: Account
) -> bool:
    """A fresh runtime directory the account can enter (a crashed run's is cleaned up).

    Returns whether ``runtime_root`` was created (then the last sandbox out removes it).
    """
    created = False
    if runtime_dir.exists():
        if not (runtime_dir / RUNTIME_TAG).exists():
            raise ConfigError(
                f"{runtime_dir} exists and is not a sandbox runtime directory",
                hint="choose another runtime_root or sandbox id",
            )
        stop_recorded(state_dir)  # a previous run of this sandbox that crashed
        rmtree(runtime_dir)
    if not runtime_root.exists():
        runtime_root.mkdir(mode=0o755, parents=True)
        created = True
    if account.as_root:
        check_traversable(runtime_dir, account)
    runtime_dir.mkdir()
    write_file(runtime_dir / RUNTIME_TAG, f"{sandbox_id}\n", account, 0o640)
    make_dir(runtime_dir, account, owned=False)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (state_dir / "host-keys").mkdir(mode=0o700, exist_ok=True)
    if account.as_root and not Path(account.home).is_dir():
        log.warning(
            "HOME of %s (%s) does not exist: sshd prints 'Could not chdir to home "
            "directory' on every session's stderr",
            account.name,
            account.home,
        )
    return created


def write_record(
    state_dir: Path,
    sandbox_id: str,
    uid: int,
    runtime_dir: Path,
    specs: Sequence[HostSpec],
    netns: str | None,
) -> None:
    """What :func:`stop_recorded` needs to find our processes after a crash."""
    record = {
        "sandbox_id": sandbox_id,
        "uid": uid,
        "runtime_dir": str(runtime_dir),
        "hosts": [[spec.name, spec.address, spec.port] for spec in specs],
        "netns": netns,
    }
    (state_dir / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")


def stop_recorded(state_dir: Path) -> int:
    """Kill the processes of the sandbox hosts recorded in ``state_dir`` and remove their
    runtime directory and network namespace: the cleanup after a process that ran a
    :class:`~fleet.sandbox.hosts.HostFleet` died.

    Returns how many processes were killed. Only processes of the recorded account that hold
    a socket on a recorded address, or carry the sandbox's session marker, are touched.
    """
    path = Path(state_dir) / RECORD_FILE
    if not path.exists():
        return 0
    try:
        record = json.loads(path.read_text())
        sandbox_id = str(record["sandbox_id"])
        hosts = [(str(n), str(a), int(p)) for n, a, p in record["hosts"]]
        uid, runtime_dir = int(record["uid"]), Path(record["runtime_dir"])
        netns = record.get("netns")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable sandbox host record") from exc
    endpoints = {proc_endpoint(address, port) for _, address, port in hosts}
    markers = {marker(sandbox_id, name) for name, _, _ in hosts}
    killed = kill_sandbox_processes(uid, (), endpoints, markers)
    if isinstance(netns, str) and NAME.fullmatch(netns):
        Namespace(netns).delete()
    if (runtime_dir / RUNTIME_TAG).exists():
        rmtree(runtime_dir)
    path.unlink()
    return len(killed)
