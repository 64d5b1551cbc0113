"""Answers of the OVH API kept for the provider's life (one rollout), to spend fewer calls.

OVH's fair use is about 60 calls a minute per consumer key: a lookup asked again for every stage
of every host costs the whole rollout time. What is kept never changes under a rollout that
holds the host's lease: a server's record (its boot setting is updated here when fleet's own
``PUT`` succeeds, and forgotten when it fails, as the call may or may not have landed), its
hardware, the ids of its boots of one type, and each boot's details. Tasks are never kept:
their state is what a wait reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar, cast

T = TypeVar("T")


class Memo:
    """A thread-safe memo of ``key -> value``; two threads asking at once may both compute
    (the first answer stored wins), which costs a call but never blocks a thread on another's
    request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, object] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                return cast("T", self._values[key])
        value = compute()
        with self._lock:
            return cast("T", self._values.setdefault(key, value))

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._values[key] = value

    def peek(self, key: Hashable) -> object | None:
        with self._lock:
            return self._values.get(key)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._values.pop(key, None)
