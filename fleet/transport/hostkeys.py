"""fleet's host-key policy: keys pinned per host and per boot generation ("role").

Keys live in a :class:`~fleet.transport.base.HostKeys` store (fleet's own), never in
``known_hosts``. The server key is checked right after the key exchange and before
authentication (:class:`PinningPolicy` is what paramiko's client calls at that moment), so no
credential is offered to a host that failed the check. A change is accepted only when the
caller says fleet caused it (``KeyExpectation.accept_new``); anything else is a
:class:`~fleet.errors.HostKeyMismatch`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import paramiko

from fleet.errors import HostKeyMismatch
from fleet.transport.base import HostKeys, KeyExpectation

_HOSTKEYS_HINT = (
    "if this host was reinstalled outside fleet, check it and replace its pin with `fleet hostkeys`"
)


def fingerprint(key_type: str, blob: str) -> str:
    """OpenSSH's SHA256 fingerprint (``SHA256:...``) of a base64 public key blob.

    ``key_type`` is checked against the type the blob itself names, so that a store row whose
    columns disagree is caught rather than fingerprinted as if it were fine.
    """
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not a base64 public key blob: {blob[:20]!r}...") from exc
    named = _blob_type(raw)
    if named != key_type:
        raise ValueError(f"the blob is a {named} key, not {key_type}")
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _blob_type(raw: bytes) -> str:
    """The key type string an SSH public key blob starts with (uint32 length + name)."""
    size = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 + size or size == 0:
        raise ValueError("truncated public key blob")
    return raw[4 : 4 + size].decode("ascii", errors="replace")


def describe(key: tuple[str, str]) -> str:
    """``type SHA256:...`` for messages; never raises (a corrupt pin must still be reported)."""
    try:
        return f"{key[0]} {fingerprint(*key)}"
    except ValueError as exc:
        return f"{key[0]} (unreadable key: {exc})"


def check_host_key(
    host: str,
    expect: KeyExpectation,
    pinned: tuple[str, str] | None,
    presented: tuple[str, str],
    *,
    trust_on_first_use: bool = True,
) -> bool:
    """Decide whether the ``presented`` key (type, base64 blob) may be trusted.

    ``pinned`` is what the store holds for ``expect.role``. Returns True when the presented
    key must be pinned once the connection succeeds (first use, or a change fleet caused
    itself), False when it matches the pin already there.

    Raises:
        HostKeyMismatch: the key differs from the pinned one, or nothing is pinned and trust
            on first use is off.
    """
    if pinned == presented:
        return False
    if expect.accept_new:
        return True
    got = describe(presented)
    if pinned is None:
        if trust_on_first_use:
            return True
        raise HostKeyMismatch(
            f"no pinned {expect.role} host key and trust on first use is off; presented {got}",
            host=host,
            hint="pin the expected key with `fleet hostkeys`",
        )
    raise HostKeyMismatch(
        f"{expect.role} host key mismatch: expected {describe(pinned)}, "
        f"got {got}: possible impersonation or an unplanned reinstall",
        host=host,
        hint=_HOSTKEYS_HINT,
    )


def host_key_algorithms(offered: tuple[str, ...] | list[str], key_type: str) -> list[str]:
    """``offered`` with the algorithms of the pinned ``key_type`` first (as OpenSSH does).

    A server with several host keys then presents the one we pinned, instead of whichever
    paramiko happens to prefer.
    """

    def matches(algorithm: str) -> bool:
        return algorithm == key_type or (
            key_type == "ssh-rsa" and algorithm.startswith("rsa-sha2-")
        )

    return [a for a in offered if matches(a)] + [a for a in offered if not matches(a)]


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """The check paramiko's client runs after the key exchange, before authentication.

    fleet's clients hold no known keys, so paramiko asks this policy about every server key.
    It raises :class:`HostKeyMismatch` (the connection is then closed unauthenticated) or
    remembers the key; :meth:`pin` stores it once authentication has succeeded, so that a
    host we could not log into is never pinned.
    """

    def __init__(
        self, host: str, expect: KeyExpectation, store: HostKeys, *, trust_on_first_use: bool
    ) -> None:
        self.host = host
        self.expect = expect
        self.store = store
        self.trust_on_first_use = trust_on_first_use
        self.pinned = store.pinned_key(host, expect.role)
        self.presented: tuple[str, str] | None = None
        self.must_pin = False

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        presented = (key.get_name(), key.get_base64())
        self.presented = presented
        self.must_pin = check_host_key(
            self.host,
            self.expect,
            self.pinned,
            presented,
            trust_on_first_use=self.trust_on_first_use,
        )

    def preferred(self, offered: tuple[str, ...] | list[str]) -> list[str]:
        """The host key algorithms to offer: the pinned key's first, unless a change is due."""
        if self.pinned is None or self.expect.accept_new:
            return list(offered)
        return host_key_algorithms(offered, self.pinned[0])

    def pin(self) -> None:
        """Store the presented key if the check said so (call after authentication)."""
        if self.must_pin and self.presented is not None:
            self.store.pin_key(self.host, self.expect.role, *self.presented)
            self.must_pin = False


class PinBuffer:
    """HostKeys that holds new pins back until :meth:`commit` (then passes them through).

    While waiting for a host, the system that answers may still be the old one: its key
    must not be pinned before the identity check has proven it is the expected system.
    """

    def __init__(self, store: HostKeys) -> None:
        self._store = store
        self._pending: dict[tuple[str, str], tuple[str, str]] = {}
        self._committed = False

    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        return self._pending.get((host, role)) or self._store.pinned_key(host, role)

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None:
        if self._committed:
            self._store.pin_key(host, role, key_type, blob)
        else:
            self._pending[host, role] = (key_type, blob)

    def commit(self) -> None:
        for (host, role), (key_type, blob) in self._pending.items():
            self._store.pin_key(host, role, key_type, blob)
        self._pending.clear()
        self._committed = True
