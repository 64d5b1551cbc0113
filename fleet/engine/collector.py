"""Python's cyclic garbage collector while rollouts run.

A rollout allocates fast and keeps little: every command builds SSH messages, a channel and its
buffers, every step two journal events, and reference counting frees nearly all of it at once.
The cyclic collector, tuned for programs that keep what they allocate, meanwhile walks its young
generation every 700 allocations and, now and then, everything the process holds: modules, the
inventory, the plan. That was about a tenth of what a 200-host ``fleet run`` spent beyond raw
paramiko (bench/README.md). While at least one rollout runs in the process:

* what existed when the first one started is frozen (:func:`gc.freeze`): start-up's objects live
  as long as the rollout, so the collector stops walking them;
* the young generation is collected every :data:`YOUNG` allocations instead of 700.

Cycles are still collected (a closed paramiko channel's, say), a little later. The last rollout
to end restores the collector as it found it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between two collections of the young generation while rollouts run.
YOUNG = 10_000

_lock = threading.Lock()
_running = 0
_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def rollout_collector() -> Iterator[None]:
    """The collector as a rollout needs it, for the block (nestable, thread-safe)."""
    global _running, _saved
    with _lock:
        if _running == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG, *_saved[1:])
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
