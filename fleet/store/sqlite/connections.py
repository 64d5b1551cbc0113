"""The SQLite store's connections: one writer and a few readers, shared by every thread.

A connection is not free: its parsed schema, page cache and prepared statements cost a few
hundred KB, and a file descriptor for the database and one for its WAL. A rollout runs a thread
per host in flight, and a connection per thread cost about 300 KB a host: 600 MB at 2,000 hosts
(with the machine's time spent on 2,000 connections' locks). Instead:

* one writer connection, used only under the store's write lock: writers inside one process
  queue on that lock anyway (:mod:`fleet.store.sqlite.core`);
* up to :data:`READERS` reader connections, each lent to one read at a time and returned;
  WAL mode lets them read while the writer writes, and SQLite releases the GIL while it works.

``check_same_thread=False`` because a connection moves between threads; it is never used by two
threads at once (the write lock, or the loan).
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 10_000
#: Reader connections at most: reads are short (one statement, fetched at once).
READERS = 4


def open_connection(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with fleet's settings, or a :class:`StoreError`."""
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the SQLite store: {exc}") from exc
    if mode != "wal":
        conn.close()
        raise StoreError(
            f"{path}: SQLite refused WAL mode (got {mode!r})",
            hint="put the store on a local filesystem",
        )
    return conn


class Connections:
    """The store's writer and its pool of readers, opened on first use, closed together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._loans = threading.BoundedSemaphore(READERS)
        self._idle: list[sqlite3.Connection] = []
        self._opened: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        self._closed = False

    def writer(self) -> sqlite3.Connection:
        """The one writing connection. The caller holds the store's write lock."""
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A reader connection for the block's statements, waiting while all are lent."""
        with self._loans:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._open()
            try:
                yield conn
            finally:
                with self._lock:
                    if not self._closed:
                        self._idle.append(conn)

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        conn = open_connection(self.path)
        with self._lock:
            self._opened.append(conn)
        return conn

    def count(self) -> int:
        """Connections opened so far (the writer's included)."""
        with self._lock:
            return len(self._opened)

    def close(self) -> None:
        """Close every connection; the store opens none after this."""
        with self._lock:
            self._closed = True
            opened, self._opened, self._idle, self._writer = self._opened, [], [], None
        for conn in opened:
            conn.close()
