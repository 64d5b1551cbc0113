"""Host keys and identity after a reinstall: the new system's key is pinned only once the host
proves to be the freshly installed server expected."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet.transport.base import Transport


def key_id(key: tuple[str, str] | None) -> str | None:
    """A short, stable id of a host key (type and blob), for the journal."""
    if key is None:
        return None
    return hashlib.sha256(f"{key[0]} {key[1]}".encode()).hexdigest()[:32]


def installed_identity(
    names: Sequence[str | None], replaces_key: str | None = None
) -> Callable[[Transport], bool]:
    """An identity check for the freshly installed system: not a rescue, not presenting the
    key of the system it replaced (``replaces_key``, a :func:`key_id`), and its hostname is one
    of ``names`` (full or short), so a new key is pinned only for the server expected."""
    full = {n.rstrip(".").lower() for n in names if n}
    short = {n.split(".")[0] for n in full}

    def check(transport: Transport) -> bool:
        presented = getattr(transport, "presented_key", None)
        if replaces_key and key_id(presented) == replaces_key:
            return False  # the old system still answers: not yet
        result = transport.run("hostname", timeout=30)
        name = result.stdout.strip().lower()
        if not result.ok or not name or name.startswith("rescue"):
            return False
        return name in full or name.split(".")[0] in short

    return check


def same_key(a: str | None, b: str | None) -> bool:
    """Two public key lines hold the same key (type and blob; comments may differ)."""
    if not a or not b:
        return False
    return a.split()[:2] == b.split()[:2]
