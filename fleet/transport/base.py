"""What fleet needs from a remote shell, as plain values.

``fleet.transport.ssh`` is the real implementation; only ``fleet.transport`` imports paramiko
and fabric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect. ``host`` is the inventory name used in every message.

    ``gateway`` is the jump host (bastion) the connection goes through, itself an endpoint
    whose host key is pinned under its own ``host`` name; ``connect_timeout`` overrides the
    connector's for this host; ``sudo_password`` names where the host's sudo password is read
    (``env:NAME`` or ``file:PATH``, see :mod:`fleet.transport.secrets`), never the password.
    """

    host: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    gateway: Endpoint | None = None
    connect_timeout: float | None = None
    sudo_password: str | None = None


def parse_jump(spec: str, *, user: str = "root", key_file: str | None = None) -> Endpoint | None:
    """The bastion chain of an OpenSSH ``ProxyJump`` value (``[user@]host[:port]``, hops
    separated by commas, the first hop outermost); None for ``none``.

    A bastion's ``host`` (the name its key is pinned under) is ``host`` or ``host:port``.

    Raises:
        ValueError: an empty hop, a bad port, or a URI form (``ssh://``).
    """
    if spec.strip().lower() == "none":
        return None
    gateway: Endpoint | None = None
    for hop in spec.split(","):
        hop = hop.strip()
        if not hop or "://" in hop or " " in hop:
            raise ValueError(f"not a ProxyJump hop: {hop!r} (write [user@]host[:port])")
        login, _, hostport = hop.rpartition("@")
        address, _, port_text = hostport.partition(":")
        if not address or (port_text and not port_text.isdigit()):
            raise ValueError(f"not a ProxyJump hop: {hop!r} (write [user@]host[:port])")
        port = int(port_text or 22)
        if not 1 <= port <= 65535:
            raise ValueError(f"bad port in ProxyJump hop {hop!r}")
        name = address if port == 22 else f"{address}:{port}"
        gateway = Endpoint(name, address, port, login or user, key_file, gateway=gateway)
    return gateway


@dataclass(frozen=True)
class CommandResult:
    """One remote command: exit code and captured output (capped; ``truncated`` says so)."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def excerpt(self, limit: int = 2000) -> str:
        """The tail of stderr then stdout, for journals and reports."""
        text = (self.stderr.strip() + "\n" + self.stdout.strip()).strip()
        return text[-limit:]


@dataclass(frozen=True)
class KeyExpectation:
    """Which host key a connection must present.

    ``role`` names the boot generation whose pinned key must match ("disk" for the installed
    system, "rescue" for a rescue boot). With ``accept_new`` a key different from the pinned
    one is accepted and pinned for that role: fleet sets it only right after it caused the
    change itself (rescue boot, reinstall).
    """

    role: str = "disk"
    accept_new: bool = False


class HostKeys(Protocol):
    """Pinned host keys, per host and role (kept by the store)."""

    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        """(key type, base64 blob) or None."""
        ...

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None: ...


class Transport(Protocol):
    """An open session to one host: run commands, then close."""

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``command`` through the remote shell; never raises on a non-zero exit."""
        ...

    def close(self) -> None: ...
