"""Chaos knobs of the fake OVH API: the failures the real API inflicts, on demand.

OVH answers 500s and HTML 502 pages from its proxies, throttles with 429, is sometimes slow,
answers 404 for a task it has just created, loses the answer of a request it carried out, and
some tasks end in ``ovhError``; it also refuses for good what a server cannot do (a 403
"not supported for this server", a 501). The provider must survive the first kind and report
the second once, so the sandbox can produce each one, per route, by probability or by count,
from a seeded :class:`random.Random` so a failing run can be replayed.

A route pattern is ``"*"`` (every route) or ``"METHOD /path/glob"``: the method may be ``*``,
each path segment is an :mod:`fnmatch` glob (``*`` never crosses a ``/``) and a final ``**``
matches any rest, e.g. ``"GET /dedicated/server/*/task/*"``. Paths are relative to ``/1.0``.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Mapping

ChaosKind = Literal["500", "502", "429", "latency", "lost", "error"]
FailureStatus = Literal["ovhError", "customerError"]

#: Requests a rate-limited consumer key may send in this many seconds.
RATE_WINDOW_SECONDS = 60.0


class ChaosConfigError(ValueError):
    """A chaos setting is malformed (unknown key, bad kind, bad number)."""


def route_matches(pattern: str, method: str, path: str) -> bool:
    """Whether ``method path`` matches a route pattern (see the module docstring)."""
    pattern = pattern.strip()
    if pattern in ("", "*"):
        return True
    want_method, _, want_path = pattern.partition(" ") if " " in pattern else ("*", "", pattern)
    if want_method != "*" and want_method.upper() != method.upper():
        return False
    return _path_matches(want_path.strip().strip("/").split("/"), path.strip("/").split("/"))


def _path_matches(want: list[str], have: list[str]) -> bool:
    for index, segment in enumerate(want):
        if segment == "**":
            return True
        if index >= len(have) or not fnmatch.fnmatchcase(have[index], segment):
            return False
    return len(want) == len(have)


@dataclass(kw_only=True)
class _Budget:
    """Fire with ``probability`` (always when None) at most ``count`` times (unbounded if None)."""

    probability: float | None = None
    count: int | None = None
    fired: int = field(default=0, init=False)

    def draw(self, rng: random.Random) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


@dataclass(kw_only=True)
class ChaosRule(_Budget):
    """One request-level failure: ``kind`` on requests matching ``route``.

    ``retry_after`` (seconds) adds a ``Retry-After`` header to a 429; ``seconds`` is the delay
    of a ``latency`` rule (latency is added, then the request goes on). ``lost`` carries the
    request out, then answers a 500 in place of its answer (a POST that started a task whose
    answer never came back). ``error`` answers ``http_status`` with OVH's ``error_class`` and
    ``message``, in the fake's error shape (e.g. 403 ``Client::Forbidden`` "This operation is
    not supported for this server", 501 ``Server::NotImplemented``).
    """

    kind: ChaosKind = "500"
    route: str = "*"
    retry_after: int | None = None
    seconds: float = 0.0
    http_status: int | None = None
    error_class: str | None = None
    message: str | None = None


@dataclass(kw_only=True)
class TaskFailure(_Budget):
    """Tasks of ``function`` (``*`` for any) end in ``status`` instead of running."""

    function: str = "*"
    status: FailureStatus = "ovhError"


@dataclass(kw_only=True)
class Early404(_Budget):
    """The first ``gets`` GETs of a new task of ``function`` answer 404, as OVH does."""

    gets: int = 1
    function: str = "*"


@dataclass(frozen=True)
class RequestChaos:
    """What chaos does to one request: a delay, then maybe a failure instead of the answer."""

    latency: float = 0.0
    failure: ChaosRule | None = None


@dataclass
class _Knobs:
    rules: list[ChaosRule] = field(default_factory=list)
    task_failures: list[TaskFailure] = field(default_factory=list)
    early_404: list[Early404] = field(default_factory=list)
    rate_limit_per_minute: int | None = None


class Chaos:
    """The chaos settings of one fake API; thread-safe, settable while it serves."""

    def __init__(self, rng: random.Random, monotonic: Callable[[], float]) -> None:
        self._rng = rng
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._knobs = _Knobs()
        self._calls: dict[str, deque[float]] = {}

    def add_rule(self, rule: ChaosRule) -> None:
        """Add a request-level failure (500, HTML 502, 429) or latency."""
        if rule.kind not in get_args(ChaosKind):
            raise ChaosConfigError(f"unknown chaos kind {rule.kind!r}")
        status = rule.http_status
        if rule.kind == "error" and (status is None or not 400 <= status <= 599):
            raise ChaosConfigError("an error rule needs an http_status between 400 and 599")
        with self._lock:
            self._knobs.rules.append(rule)

    def fail_tasks(self, failure: TaskFailure) -> None:
        """Make new tasks end in ``ovhError``/``customerError``."""
        if failure.status not in get_args(FailureStatus):
            raise ChaosConfigError(f"a task cannot fail with status {failure.status!r}")
        with self._lock:
            self._knobs.task_failures.append(failure)

    def hide_new_tasks(self, early: Early404) -> None:
        """Answer 404 to the first GETs of new tasks."""
        if early.gets < 0:
            raise ChaosConfigError("early 404 gets must be >= 0")
        with self._lock:
            self._knobs.early_404.append(early)

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Limit each consumer key to ``per_minute`` requests a minute (None: no limit)."""
        if per_minute is not None and per_minute < 1:
            raise ChaosConfigError("rate limit must be >= 1 request a minute")
        with self._lock:
            self._knobs.rate_limit_per_minute = per_minute
            self._calls.clear()

    def reset(self) -> None:
        """Remove every knob: the fake behaves like a healthy OVH again."""
        with self._lock:
            self._knobs = _Knobs()
            self._calls.clear()

    def for_request(self, method: str, path: str) -> RequestChaos:
        """Draw the chaos for one request: total latency and the first failure that fires."""
        latency = 0.0
        with self._lock:
            for rule in self._knobs.rules:
                if not route_matches(rule.route, method, path) or not rule.draw(self._rng):
                    continue
                if rule.kind == "latency":
                    latency += max(0.0, rule.seconds)
                else:
                    return RequestChaos(latency, rule)
        return RequestChaos(latency, None)

    def throttle(self, consumer_key: str) -> float | None:
        """Count a call of ``consumer_key``; seconds to wait when it is over its limit."""
        with self._lock:
            limit = self._knobs.rate_limit_per_minute
            if limit is None:
                return None
            now = self._monotonic()
            calls = self._calls.setdefault(consumer_key, deque())
            while calls and calls[0] <= now - RATE_WINDOW_SECONDS:
                calls.popleft()
            if len(calls) >= limit:
                return max(0.0, calls[0] + RATE_WINDOW_SECONDS - now)
            calls.append(now)
            return None

    def task_fate(self, function: str) -> str:
        """The final status a new task of ``function`` will reach (``done`` unless failed)."""
        with self._lock:
            for failure in self._knobs.task_failures:
                if _function_matches(failure.function, function) and failure.draw(self._rng):
                    return failure.status
        return "done"

    def hidden_gets(self, function: str) -> int:
        """How many GETs of a new task of ``function`` answer 404."""
        with self._lock:
            for early in self._knobs.early_404:
                if _function_matches(early.function, function) and early.draw(self._rng):
                    return early.gets
        return 0

    def snapshot(self) -> dict[str, Any]:
        """The knobs as JSON-ready data (the control surface's ``GET /_sandbox/state``)."""
        with self._lock:
            return {
                "rules": [asdict(rule) for rule in self._knobs.rules],
                "task_failures": [asdict(item) for item in self._knobs.task_failures],
                "early_404": [asdict(item) for item in self._knobs.early_404],
                "rate_limit_per_minute": self._knobs.rate_limit_per_minute,
            }

    def configure(self, data: Mapping[str, Any]) -> None:
        """Add knobs from JSON (``POST /_sandbox/chaos``); keys as in :meth:`snapshot`."""
        unknown = set(data) - {"rules", "task_failures", "early_404", "rate_limit_per_minute"}
        if unknown:
            raise ChaosConfigError(f"unknown chaos keys: {sorted(unknown)}")
        rules = [_build(ChaosRule, item) for item in _as_list(data.get("rules", []))]
        failures = [_build(TaskFailure, item) for item in _as_list(data.get("task_failures", []))]
        early = [_build(Early404, item) for item in _as_list(data.get("early_404", []))]
        for rule in rules:
            self.add_rule(rule)
        for failure in failures:
            self.fail_tasks(failure)
        for item in early:
            self.hide_new_tasks(item)
        if "rate_limit_per_minute" in data:
            self.set_rate_limit(_optional_int(data["rate_limit_per_minute"]))


def _function_matches(pattern: str, function: str) -> bool:
    return fnmatch.fnmatchcase(function, pattern)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise ChaosConfigError(f"expected a list of objects, got {type(value).__name__}")
    return value


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChaosConfigError(f"expected an integer, got {value!r}")
    return value


_KnobT = TypeVar("_KnobT", bound=_Budget)

_NUMBERS: dict[str, tuple[type, ...]] = {
    "probability": (int, float),
    "seconds": (int, float),
    "count": (int,),
    "retry_after": (int,),
    "http_status": (int,),
    "gets": (int,),
}


def _build(cls: type[_KnobT], item: Any) -> _KnobT:
    """A knob from its JSON object, refusing unknown keys and values of the wrong type."""
    if not isinstance(item, dict):
        raise ChaosConfigError(f"expected an object for {cls.__name__}, got {item!r}")
    item = {key: value for key, value in item.items() if key != "fired"}  # as the state shows it
    allowed = {f.name for f in fields(cls)} - {"fired"}
    unknown = set(item) - allowed
    if unknown:
        raise ChaosConfigError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    for key, value in item.items():
        kinds = _NUMBERS.get(key)
        if kinds is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ChaosConfigError(f"{cls.__name__}.{key} must be a number, got {value!r}")
    for key in ("route", "error_class", "message", "function"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise ChaosConfigError(f"{cls.__name__}.{key} must be text, got {item[key]!r}")
    probability = item.get("probability")
    if probability is not None and not 0.0 <= float(probability) <= 1.0:
        raise ChaosConfigError(f"probability {probability!r} is not within [0, 1]")
    return cls(**item)


def ceil_seconds(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` header, never 0 while the limit holds."""
    return max(1, math.ceil(seconds))
