"""What fleet needs from a remote shell, as plain values.

``fleet.transport.ssh`` is the real implementation (the only module importing paramiko).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect. ``host`` is the inventory name used in every message."""

    host: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None


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
