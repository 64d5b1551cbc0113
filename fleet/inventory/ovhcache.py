"""OVH data kept on disk: servers and their hardware, each with the time it was fetched.

Selecting ``--limit hw:hybrid`` over a few hundred servers needs two API calls per server; the
answers change rarely (hardware never, datacenter and rack when OVH moves a server), so they are
kept in one JSON file per OVH endpoint under fleet's state directory and reused while younger
than ``max_age`` (the ``ovh.cache_max_age`` setting). :attr:`OvhCache.oldest` tells how old the
data just used is, for the operator to see; ``max_age=0`` fetches everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fleet.inventory.ovh import ServerSource
from fleet.provider.base import DiskGroup, Hardware, Server

_VERSION = 1


class OvhCache:
    """A :class:`~fleet.inventory.ServerSource` that answers from the file while fresh and from
    ``source()`` (created on first need) otherwise. Thread-safe; :meth:`save` writes the file."""

    def __init__(
        self,
        path: Path,
        source: Callable[[], ServerSource],
        max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age = max_age
        self._factory = source
        self._source: ServerSource | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._data = self._read()
        self.fetched = 0  # answers taken from the API in this run
        self.reused = 0  # answers taken from the file
        self.oldest: float | None = None  # when the oldest answer used was fetched (epoch)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"version": _VERSION, "servers": {}, "list": None}
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return {"version": _VERSION, "servers": {}, "list": None}
        return data

    def _api(self) -> ServerSource:
        with self._lock:
            if self._source is None:
                self._source = self._factory()
            return self._source

    def _fresh(self, entry: Any) -> bool:
        return (
            isinstance(entry, dict)
            and isinstance(entry.get("at"), int | float)
            and self._clock() - entry["at"] <= self.max_age
        )

    def _used(self, at: float, reused: bool) -> None:
        with self._lock:
            self.oldest = at if self.oldest is None else min(self.oldest, at)
            if reused:
                self.reused += 1
            else:
                self.fetched += 1

    def list_servers(self) -> list[str]:
        entry: Any = self._data.get("list")
        if self._fresh(entry):
            self._used(entry["at"], True)
            return list(entry["names"])
        names = self._api().list_servers()
        at = self._clock()
        with self._lock:
            self._data["list"] = {"at": at, "names": names}
        self._used(at, False)
        return names

    def server(self, name: str) -> Server:
        entry = self._entry(name, "server")
        if entry is not None:
            return Server(**entry)
        server = self._api().server(name)
        self._store(name, "server", asdict(server))
        return server

    def hardware(self, name: str) -> Hardware:
        entry = self._entry(name, "hardware")
        if entry is not None:
            groups = tuple(DiskGroup(**group) for group in entry["disk_groups"])
            return Hardware(entry["description"], groups, entry.get("boot_mode"))
        hardware = self._api().hardware(name)
        self._store(name, "hardware", asdict(hardware))
        return hardware

    def _entry(self, name: str, kind: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._data["servers"].get(name, {}).get(kind)
        if not self._fresh(entry):
            return None
        try:
            value = dict(entry["value"])
        except (KeyError, TypeError, ValueError):
            return None
        self._used(entry["at"], True)
        return value

    def _store(self, name: str, kind: str, value: dict[str, Any]) -> None:
        at = self._clock()
        with self._lock:
            self._data["servers"].setdefault(name, {})[kind] = {"at": at, "value": value}
        self._used(at, False)

    def save(self) -> None:
        """Write the file (atomically, readable by its owner only)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with self._lock:
            text = json.dumps(self._data)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, self.path)

    def describe(self) -> str:
        """One line for the operator: where the data came from, and how old it is."""
        if not self.reused:
            return f"OVH data: {self.fetched} answers fetched now (cached in {self.path})"
        age = _age(self._clock() - (self.oldest or 0.0))
        fetched = f", {self.fetched} fetched now" if self.fetched else ""
        return (
            f"OVH data: {self.reused} answers from the cache, up to {age} old{fetched} "
            f"({self.path}; --refresh fetches it all now)"
        )


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def cache_path(state_dir: Path, endpoint: str, url: str | None = None) -> Path:
    """The cache file of one OVH endpoint (``ovh-eu``...; an endpoint registered under a URL,
    as the sandbox's, gets a file per URL)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in endpoint)
    if url:
        safe += "-" + hashlib.sha256(url.encode()).hexdigest()[:8]
    return state_dir / f"ovh-cache-{safe}.json"
