"""Pinned host keys kept in a dict: the store's part of the transport, for transport tests."""

from __future__ import annotations


class MemoryHostKeys:
    """HostKeys kept in a dict."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], tuple[str, str]] = {}

    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        return self.keys.get((host, role))

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None:
        self.keys[host, role] = (key_type, blob)
