"""Booting one sandbox host: its state record, its disk key, its sshd process, and the wait
until that sshd listens (read from ``/proc``, no connection made).

Layout of one host, ``<runtime_root>/<sandbox id>/<name>/`` (when root: owned by root, readable
by the sandbox account's group, except the HOMEs and ``run/``, which that account owns)::

    sshd_config             rewritten at every boot for its mode
    disk_host_key           the installed system's key (kept in state_dir across restarts)
    rescue_host_key         made at every rescue boot
    authorized_keys.disk    the operator's key (or the key given at the last reinstall)
    authorized_keys.rescue  the rescueSshKey of the current rescue boot, or empty
    bin/hostname            prints the identity of the current mode
    bin/sudo                sudo's stand-in; sudo_password.sha256 its password, if any
    disk/  rescue/          HOME per mode
    run/                    sshd's pid file and log
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from fleet.errors import ConfigError
from fleet.sandbox.netinfo import proc_endpoint, tcp_table
from fleet.sandbox.refuser import Refuser
from fleet.sandbox.runtime import HostSpec
from fleet.sandbox.sshkeys import generate_ed25519

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleet.sandbox.account import Account
    from fleet.sandbox.netns import Namespace

Mode = Literal["disk", "rescue"]


@dataclass
class HostState:
    """Mutable state of one host; ``lock`` serialises its power and chaos operations."""

    spec: HostSpec
    dir: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    disk_public: str = ""
    disk_authorized: str = ""
    rescue_public: str | None = None
    mode: Mode | None = None
    process: subprocess.Popen[bytes] | None = None
    refuser: Refuser | None = None
    isolated: bool = False  # in the network namespace, behind the jump host

    def home(self, mode: Mode) -> Path:
        return self.dir / mode


class PowerEventLike(Protocol):
    """What :meth:`HostFleet.on_power` reads from the fake OVH API's power events."""

    @property
    def kind(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def rescue_ssh_key(self) -> str | None: ...
    @property
    def reinstalled(self) -> bool: ...


def new_disk_key(stored: Path) -> tuple[str, str]:
    """A new installed-system key pair, its private half kept at ``stored`` (0600)."""
    private, public = generate_ed25519()
    stored.unlink(missing_ok=True)
    fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(private)
    return private, public


def spawn_sshd(
    host: HostState, sshd: Path, account: Account, netns: Namespace | None
) -> subprocess.Popen[bytes]:
    """Start the host's sshd in the foreground, in its own session, as the account (in
    the namespace for a host behind the jump host: nsenter drops to the account there)."""
    account = account
    command = [str(sshd), "-D", "-f", f"{host.dir}/sshd_config"]
    command += ["-E", f"{host.dir}/run/sshd.log"]
    drop = account.as_root
    if host.isolated:
        assert netns is not None, "isolated hosts start once the namespace exists"
        uid, gid = (account.uid, account.gid) if drop else (None, None)
        command = [*netns.enter(uid, gid), *command]
        drop = False
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"},
            start_new_session=True,
            umask=0o022,
            user=account.uid if drop else None,
            group=account.gid if drop else None,
            extra_groups=[] if drop else None,
        )
    except OSError as exc:
        raise ConfigError(f"{host.spec.name}: cannot run {sshd}: {exc}") from exc


def wait_listening(hosts: Sequence[HostState], timeout: float) -> None:
    """Poll /proc/net/tcp (no connection made) until every host's sshd listens."""
    pending = {proc_endpoint(h.spec.address, h.spec.port): h for h in hosts}
    deadline = time.monotonic() + timeout
    while pending:
        listening = {local for local, state, _ in tcp_table() if state == "0A"}
        for endpoint in [e for e in pending if e in listening or _ns_listens(pending[e])]:
            del pending[endpoint]
        for host in pending.values():
            if host.process is None or host.process.poll() is not None:
                raise _start_error(host, "sshd exited at start")
        if pending and time.monotonic() > deadline:
            raise _start_error(next(iter(pending.values())), "sshd is not listening")
        if pending:
            time.sleep(0.02)


def _ns_listens(host: HostState) -> bool:
    """A host in the namespace listens (read from its own process's view of TCP)."""
    if not host.isolated or host.process is None:
        return False
    wanted = proc_endpoint(host.spec.address, host.spec.port)
    table = tcp_table(host.process.pid)
    return any(local == wanted and state == "0A" for local, state, _ in table)


def _start_error(host: HostState, what: str) -> ConfigError:
    try:
        tail = (host.dir / "run" / "sshd.log").read_text()[-500:].strip()
    except OSError:
        tail = ""
    spec = host.spec
    return ConfigError(
        f"{spec.name}: {what} on {spec.address}:{spec.port}: {tail or 'no log'}",
        hint="another sandbox may use this address: see allocate_addresses()",
    )
