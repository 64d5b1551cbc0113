"""Finding and killing the processes of sandbox hosts: listeners, connections, sessions.

Processes are found again by what only they can have: descendants of a listener we started,
a socket whose local address is one of our hosts, or a marker variable in their environment
(it survives daemonised children).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import FleetError
from fleet.sandbox.netinfo import tcp_table

if TYPE_CHECKING:
    from collections.abc import Collection

KILL_TIMEOUT = 5.0


def process_table(uid: int) -> dict[int, int]:
    """pid -> ppid of the live (not zombie) processes owned by ``uid``, ourselves excluded."""
    table: dict[int, int] = {}
    me = os.getpid()
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in ("Z", "X"):
                table[int(entry.name)] = int(fields[1])
    return table


def descendants(table: dict[int, int], roots: Collection[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    queue = [root for root in roots if root in table]
    while queue and len(found) < 1_000_000:
        pid = queue.pop()
        if pid not in found:
            found.add(pid)
            queue.extend(children.get(pid, []))
    return found


def has_marker(pid: int, markers: Collection[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return any(item in markers for item in environ.read().split(b"\0"))
    except OSError:
        return False


def holds_socket(pid: int, inodes: Collection[int]) -> bool:
    try:
        links = [str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link.startswith("socket:[") and int(link[8:-1]) in inodes for link in links)


def sandbox_processes(
    uid: int, roots: Collection[int], endpoints: Collection[str], markers: Collection[bytes]
) -> set[int]:
    """Our processes: descendants of ``roots``, holders of a socket on one of ``endpoints``
    (listeners and connection processes), and sessions whose environment has a marker."""
    table = process_table(uid)
    inodes = {inode for local, _, inode in tcp_table() if local in endpoints and inode}
    found = descendants(table, roots)
    for pid in table:
        if pid not in found and (has_marker(pid, markers) or holds_socket(pid, inodes)):
            found.add(pid)
    return found


def kill_sandbox_processes(
    uid: int, roots: Collection[int], endpoints: Collection[str], markers: Collection[bytes]
) -> set[int]:
    """SIGKILL our processes in rounds until none is left (a session may fork meanwhile)."""
    killed: set[int] = set()
    deadline = time.monotonic() + KILL_TIMEOUT
    for _ in range(200):
        found = sandbox_processes(uid, roots, endpoints, markers)
        if not found:
            return killed
        # listeners first, then parents before children (a session's sshd before its shell):
        # like a power cut, the connection drops before the command could report an exit
        for pid in sorted(found, key=lambda pid: (pid not in roots, pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= found
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    left = sandbox_processes(uid, roots, endpoints, markers)
    if left:
        raise FleetError(f"sandbox processes survived SIGKILL: {sorted(left)[:20]}")
    return killed
