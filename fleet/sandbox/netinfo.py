"""Loopback addresses for sandbox hosts, and the TCP sockets of a network namespace
(read from ``/proc``, no connection made)."""

from __future__ import annotations

import socket
import struct

from fleet.errors import ConfigError, UsageError


def allocate_addresses(count: int, port: int = 2222) -> list[str]:
    """``count`` loopback addresses 127.N.x.y (x = i // 250, y = i % 250 + 1) on a free N.

    N is the first of 100..199 where nothing listens in 127.N.0.0/16 and 127.N.0.1:``port``
    can be bound, i.e. no other sandbox runs there. Best effort: two sandboxes allocating at
    the same instant, or one whose first host is powered off, can still collide (their sshd
    then fail to start with a clear error).
    """
    if not 1 <= count <= 250 * 256:
        raise UsageError(f"cannot place {count} hosts in one loopback /16 (1..64000)")
    busy = {address.split(".")[1] for address, _ in tcp_endpoints(listening_only=True)}
    for n in range(100, 200):
        if str(n) not in busy and can_bind(f"127.{n}.0.1", port):
            return [f"127.{n}.{i // 250}.{i % 250 + 1}" for i in range(count)]
    raise ConfigError(
        f"no free loopback subnet 127.N.0.0/16 (N in 100..199) for port {port}",
        hint="stop other sandboxes (fleet sandbox down) or choose another port",
    )


def can_bind(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def tcp_endpoints(*, listening_only: bool) -> list[tuple[str, int]]:
    """Local (address, port) of the IPv4 TCP sockets of this network namespace."""
    found = []
    for local, state, _inode in tcp_table():
        if listening_only and state != "0A":
            continue
        hex_address, hex_port = local.split(":")
        packed = struct.pack("=I", int(hex_address, 16))
        found.append((socket.inet_ntoa(packed), int(hex_port, 16)))
    return found


def listening_endpoints() -> set[tuple[str, int]]:
    """(address, port) of every IPv4 TCP socket listening in this network namespace."""
    return set(tcp_endpoints(listening_only=True))


def tcp_table(pid: int | None = None) -> list[tuple[str, str, int]]:
    """(local address as in /proc/net/tcp, state, socket inode) of every IPv4 TCP socket of
    this network namespace, or of the namespace process ``pid`` is in (none if it is gone)."""
    try:
        with open("/proc/net/tcp" if pid is None else f"/proc/{pid}/net/tcp") as table:
            rows = table.readlines()[1:]
    except OSError:
        if pid is None:
            raise
        return []
    out = []
    for row in rows:
        fields = row.split()
        if len(fields) >= 10:
            out.append((fields[1], fields[3], int(fields[9])))
    return out


def proc_endpoint(address: str, port: int) -> str:
    """``address:port`` spelled as /proc/net/tcp does (the address as a native-endian int)."""
    (value,) = struct.unpack("=I", socket.inet_aton(address))
    return f"{value:08X}:{port:04X}"
