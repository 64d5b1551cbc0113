"""A connection that LISTENs, apart from the pool: how a rollout hears of a halt at once.

It is opened on first use and re-opened after a failure; while it cannot be, waiters poll.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from fleet.store.postgresql.conninfo import ConnInfo


class Listener:
    """LISTEN on one channel; :meth:`wait` returns when a notification arrives or time is up."""

    def __init__(self, info: ConnInfo, channel: str) -> None:
        self._info = info
        self._channel = channel
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def listening(self) -> bool:
        """Listen from now on (a notification sent later wakes the next :meth:`wait`); False
        when the server cannot be reached (the caller polls instead)."""
        with self._lock:
            if self._conn is not None:
                return True
            if self._closed:
                return False
            try:
                conn = psycopg.connect(self._info.conninfo, autocommit=True)
            except psycopg.Error:
                return False
            try:
                conn.execute(f"LISTEN {self._channel}")
            except psycopg.Error:
                conn.close()
                return False
            self._conn = conn
            return True

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a notification. False when the connection failed (it is
        dropped, and the next :meth:`listening` opens another)."""
        if not self._lock.acquire(timeout=max(seconds, 0.0)):
            return True  # another thread waits on the connection: the caller reads again
        try:
            if self._conn is None:
                return False
            for _ in self._conn.notifies(timeout=seconds, stop_after=1):
                break
            return True
        except psycopg.Error:
            self._drop()
            return False
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
