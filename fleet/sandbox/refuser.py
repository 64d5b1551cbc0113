"""Chaos for sandbox hosts: connections refused before sshd answers."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

from fleet.errors import FleetError
from fleet.sandbox.procs import KILL_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset, as a refused or dropped connection looks to the client."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def bind_listener(address: str, port: int) -> socket.socket:
    """Listen on address:port once the stopped sshd's socket is gone (bounded wait)."""
    deadline = time.monotonic() + KILL_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            if time.monotonic() > deadline:
                raise FleetError(f"{address}:{port}: cannot listen: {exc}") from exc
            time.sleep(0.01)
            continue
        return sock


class Refuser:
    """Stands in for a host's sshd and resets its next ``count`` connections.

    The last one is held open until ``done`` has brought sshd back, so that a client retrying
    after its ``count``-th failure meets sshd, not a closed port.
    """

    def __init__(
        self,
        listener: socket.socket,
        count: int,
        timeout: float,
        done: Callable[[Refuser], None],
        name: str,
    ) -> None:
        self._listener = listener
        self._count = count
        self._deadline = time.monotonic() + timeout
        self._done = done
        self._cancelled = threading.Event()
        self._closed = threading.Event()
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name=f"refuse-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self, timeout: float = KILL_TIMEOUT) -> None:
        """Stop refusing and release the port (sshd is not restarted)."""
        self._cancelled.set()
        if not self._closed.wait(timeout):
            raise FleetError(f"{self._thread.name}: the refusing socket did not close")

    def _run(self) -> None:
        last: socket.socket | None = None
        try:
            last = self._reset_until_last()
        finally:
            self._listener.close()
            self._closed.set()
        try:
            if not self._cancelled.is_set():
                self._done(self)
        except Exception:
            log.exception(
                "%s: could not restart sshd after refusing connections", self._thread.name
            )
        finally:
            if last is not None:
                reset(last)

    def _reset_until_last(self) -> socket.socket | None:
        self._listener.settimeout(0.05)
        while not self._cancelled.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.refused += 1
            if self.refused >= self._count:
                return conn
            reset(conn)
        return None
