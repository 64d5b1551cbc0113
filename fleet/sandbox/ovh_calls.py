"""The fake OVH API's own count of the calls it answered, per server and per route.

Every request under ``/1.0`` counts, whatever its answer (a 429, a 500 or a chaos 502 costs a
call of OVH's budget as much as a 200 does); the answers that were not a 2xx are also counted
apart (:attr:`CallSnapshot.failed`), so that a test under chaos can tell its retries. A call
is charged to the server its path names (``/dedicated/server/{sn}/...``); the others
(``/auth/time``, the server list) to :data:`NO_SERVER`. Routes are counted by shape, ids
replaced by ``{id}`` and the query left out, so that ``GET /dedicated/server/{sn}/task/{id}`` sums every task poll.

Tests and benchmarks take a :meth:`CallCounter.snapshot` before and after the work they measure
and compare the two (:meth:`CallSnapshot.since`): the counter is never reset under a client.
The last :data:`LOG_SIZE` calls are also kept with the moment they were answered
(:meth:`CallCounter.log`), so that a test can check the rate they came at.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from fleet.sandbox.ovh_checks import Json

#: How many calls :meth:`CallCounter.log` keeps (the oldest go first).
LOG_SIZE = 100_000
#: Where calls that name no server are charged.
NO_SERVER = "-"
_SERVER_PATH = re.compile(r"^/dedicated/server/(?P<sn>[^/]+)(?P<rest>/.*)?$")
_NUMBER = re.compile(r"/\d+(?=/|$)")


def route_of(method: str, path: str) -> tuple[str, str]:
    """(server, route shape) of one API call; ``path`` is below ``/1.0``, without its query."""
    match = _SERVER_PATH.match(path.rstrip("/") or "/")
    if match is None:
        return NO_SERVER, f"{method} {_NUMBER.sub('/{id}', path)}"
    rest = _NUMBER.sub("/{id}", match.group("rest") or "")
    return unquote(match.group("sn")), f"{method} /dedicated/server/{{sn}}{rest}"


@dataclass(frozen=True)
class Call:
    """One call answered: when it came (the counter's monotonic clock), to whom, what, and the
    status."""

    at: float
    server: str
    route: str
    status: int


@dataclass(frozen=True)
class CallSnapshot:
    """Calls counted up to a moment: per server, and per (server, route)."""

    per_server: Counter[str] = field(default_factory=Counter)
    per_route: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)  # answers other than 2xx, per server

    def since(self, before: CallSnapshot) -> CallSnapshot:
        """The calls counted between ``before`` and this snapshot."""
        return CallSnapshot(
            self.per_server - before.per_server,
            self.per_route - before.per_route,
            self.failed - before.failed,
        )

    @property
    def total(self) -> int:
        return sum(self.per_server.values())

    def routes_of(self, server: str) -> dict[str, int]:
        """The calls charged to ``server``, by route shape."""
        return {route: n for (sn, route), n in sorted(self.per_route.items()) if sn == server}

    def to_json(self) -> Json:
        routes: dict[str, dict[str, int]] = {}
        for (server, route), n in sorted(self.per_route.items()):
            routes.setdefault(server, {})[route] = n
        return {
            "per_server": dict(sorted(self.per_server.items())),
            "per_route": routes,
            "failed": dict(sorted(self.failed.items())),
        }

    @classmethod
    def from_json(cls, data: Json) -> CallSnapshot:
        """The snapshot of ``GET /_sandbox/state``'s ``calls`` (for a sandbox in another process)."""
        per_server: Counter[str] = Counter()
        per_route: Counter[tuple[str, str]] = Counter()
        failed: Counter[str] = Counter()
        if isinstance(data, dict):
            per_server.update({str(k): int(v) for k, v in dict(data.get("per_server", {})).items()})
            failed.update({str(k): int(v) for k, v in dict(data.get("failed", {})).items()})
            for server, routes in dict(data.get("per_route", {})).items():
                for route, n in dict(routes).items():
                    per_route[str(server), str(route)] = int(n)
        return cls(per_server, per_route, failed)


class CallCounter:
    """Thread-safe counts of the calls the fake answered (from its HTTP handler threads)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._per_route: Counter[tuple[str, str]] = Counter()
        self._failed: Counter[str] = Counter()
        self._log: deque[Call] = deque(maxlen=LOG_SIZE)

    def now(self) -> float:
        """The counter's clock (when a call came, for :meth:`count`)."""
        return self._monotonic()

    def count(self, method: str, path: str, status: int, came: float | None = None) -> None:
        """Count one answered call; ``came``: when it came (default: now)."""
        key = route_of(method, path)
        at = self._monotonic() if came is None else came
        with self._lock:
            self._log.append(Call(at, key[0], key[1], status))
            self._per_route[key] += 1
            if not 200 <= status < 300:
                self._failed[key[0]] += 1

    def log(self, since: float = float("-inf")) -> list[Call]:
        """The calls answered at or after ``since`` (of the counter's clock), oldest first."""
        with self._lock:
            return [call for call in self._log if call.at >= since]

    def snapshot(self) -> CallSnapshot:
        with self._lock:
            per_route, failed = Counter(self._per_route), Counter(self._failed)
        per_server: Counter[str] = Counter()
        for (server, _), n in per_route.items():
            per_server[server] += n
        return CallSnapshot(per_server, per_route, failed)
