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
from collections.abc import Iterator
from contextlib import contextmanager

WAKES_PER_SECOND = 20_000
#: No thread keeps the GIL longer than this, whatever the pool.
MAX_INTERVAL = 0.1


def interval_for(threads: int) -> float:
    """The switch interval for a pool of ``threads`` (never below Python's current one)."""
    return min(MAX_INTERVAL, max(sys.getswitchinterval(), threads / WAKES_PER_SECOND))


@contextmanager
def switch_interval_for(threads: int) -> Iterator[float]:
    """Set the interval for ``threads`` for the block; restore the previous one after."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(interval_for(threads))
    try:
        yield sys.getswitchinterval()
    finally:
        sys.setswitchinterval(before)
