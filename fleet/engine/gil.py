"""The interpreter's switch interval for a pool of many threads.

A thread waiting for the GIL wakes every switch interval (5 ms by default) to ask the holder
to let go, so N waiting threads make about N / interval wake-ups a second. With a thread per
host in flight, and paramiko waking each connection's threads several times a second, 2,000
hosts kept about a thousand threads waiting: the machine spent its time switching between them
in the kernel (a 2,000-host rollout took over 15 minutes of system time and barely moved).
The interval is therefore scaled with the pool so that waiting threads wake about
:data:`WAKES_PER_SECOND` times a second in all; pools of up to 100 threads keep Python's
default. The interval only bounds how long a thread that never blocks keeps the GIL; fleet's
threads block on I/O and hand the GIL over at once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

WAKES_PER_SECOND = 20_000
#: No thread keeps the GIL longer than this, whatever the pool.
MAX_INTERVAL = 0.1


def interval_for(threads: int) -> float:
    """The switch interval for a pool of ``threads`` (never below Python's current one)."""
    return min(MAX_INTERVAL, max(sys.getswitchinterval(), threads / WAKES_PER_SECOND))


_lock = threading.Lock()
_pools: list[int] = []  # the pools of the rollouts running in this process
_saved = 0.005


@contextmanager
def switch_interval_for(threads: int) -> Iterator[float]:
    """Set the interval for ``threads`` for the block (nestable, thread-safe: rollouts running
    at once in one process get the interval of the largest pool); the last block to end
    restores the interval it found."""
    global _saved
    with _lock:
        if not _pools:
            _saved = sys.getswitchinterval()
        _pools.append(threads)
        sys.setswitchinterval(_scaled())
        used = sys.getswitchinterval()
    try:
        yield used
    finally:
        with _lock:
            _pools.remove(threads)
            sys.setswitchinterval(_scaled() if _pools else _saved)


def _scaled() -> float:
    """The interval for the largest pool running, over the one found (the caller holds the lock)."""
    return min(MAX_INTERVAL, max(_saved, max(_pools) / WAKES_PER_SECOND))
