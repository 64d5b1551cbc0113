"""Sandbox hosts out of direct reach: a network namespace, and a jump host as the only way in.

With a jump host, :class:`~fleet.sandbox.hosts.HostFleet` starts its servers' sshd inside a
network namespace of their own (:class:`Namespace`: nothing but a loopback interface, no link
to this machine's namespace), so no process of this machine can connect to them. The jump
host is a real OpenSSH sshd run the way inetd (or systemd's socket activation) runs it: a
listening socket on this machine's loopback (:class:`JumpListener`) hands each connection to
a fresh ``sshd -i`` started inside the namespace. Its sessions and the TCP channels its
clients open onward (``direct-tcpip``, what ProxyJump and Fabric's gateway use) therefore
reach the servers; nothing else does.

Needs root (to create the namespace and enter it); sshd still runs as the unprivileged
sandbox account (``nsenter --setuid/--setgid`` drop to it inside).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import ConfigError, FleetError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleet.sandbox.account import Account
    from fleet.sandbox.runtime import HostSpec

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
_IP = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "/sbin/ip"
_NSENTER = "/usr/bin/nsenter"


def _ip(*args: str) -> None:
    try:
        subprocess.run([_IP, *args], check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ConfigError(f"ip {' '.join(args)}: {detail.strip()}") from exc


@dataclass(frozen=True)
class Namespace:
    """A named network namespace (``ip netns``) holding only an up loopback interface."""

    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @classmethod
    def create(cls, name: str) -> Namespace:
        """Make the namespace (a stale one of the same name, left by a crash, is replaced)."""
        if os.geteuid() != 0:
            raise ConfigError(
                "hosts behind a jump host need root: they live in a network namespace",
                hint="run as root, or start the sandbox without a jump host",
            )
        namespace = cls(name)
        namespace.delete()
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        return namespace

    def delete(self) -> None:
        """Remove the namespace (idempotent). Its processes must have been killed first."""
        if self.path.exists():
            _ip("netns", "delete", self.name)

    def enter(self, uid: int | None, gid: int | None) -> list[str]:
        """A command prefix that runs the rest inside the namespace, as ``uid``/``gid``."""
        prefix = [_NSENTER, f"--net={self.path}"]
        if uid is not None and gid is not None:
            prefix += [f"--setgid={gid}", f"--setuid={uid}"]
        return [*prefix, "--"]


class JumpListener:
    """The jump host's listening socket: each connection goes to a new ``sshd -i``.

    ``command`` is the full argv of that sshd (namespace prefix included). The thread stops
    with :meth:`close`; the sshd processes it started are the caller's to kill (they hold a
    socket on the jump host's address, and their sessions carry its marker).
    """

    def __init__(self, address: str, port: int, command: Sequence[str], log_file: Path) -> None:
        self.address, self.port = address, port
        self._command = list(command)
        self._log_file = log_file
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((address, port))
        except OSError as exc:
            self._sock.close()
            raise ConfigError(f"jump host: cannot listen on {address}:{port}: {exc}") from exc
        self._sock.listen(128)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._children: list[subprocess.Popen[bytes]] = []
        self._thread = threading.Thread(target=self._serve, name="sandbox-jump", daemon=True)

    @classmethod
    def serve(
        cls, spec: HostSpec, host_dir: Path, netns: Namespace, account: Account, sshd: Path
    ) -> JumpListener:
        """Listen for ``spec``, a jump host whose files are in ``host_dir``, and start serving."""
        uid, gid = (account.uid, account.gid) if account.as_root else (None, None)
        command = [*netns.enter(uid, gid), str(sshd), "-i"]
        command += ["-f", f"{host_dir}/sshd_config", "-E", f"{host_dir}/run/sshd.log"]
        listener = cls(spec.address, spec.port, command, host_dir / "run" / "accept.log")
        listener._thread.start()
        return listener

    def close(self) -> None:
        """Stop accepting and release the port (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._sock.close()

    def reap(self) -> None:
        """Wait for the sshd processes that ended (kill them first to end them all)."""
        for child in list(self._children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
        self._children = [child for child in self._children if child.poll() is None]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                self._children = [c for c in self._children if c.poll() is None]
                continue
            except OSError:
                return
            with conn:
                try:
                    self._children.append(self._spawn(conn))
                except FleetError:
                    log.exception("jump host %s:%d: cannot start sshd", self.address, self.port)

    def _spawn(self, conn: socket.socket) -> subprocess.Popen[bytes]:
        conn.setblocking(True)
        try:
            with open(self._log_file, "ab") as err:
                return subprocess.Popen(
                    self._command,
                    stdin=conn.fileno(),
                    stdout=conn.fileno(),
                    stderr=err,
                    cwd="/",
                    env={"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"},
                    start_new_session=True,
                )
        except OSError as exc:
            raise FleetError(f"cannot run {self._command[0]}: {exc}") from exc
