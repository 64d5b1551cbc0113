"""The sandbox's SSH hosts: one real OpenSSH ``sshd`` per server, on its own loopback address.

Each host imitates an OVH dedicated server as fleet sees it over SSH:

* two boot modes. ``disk`` is the installed system: an ed25519 host key made once and kept for
  the life of the sandbox (a reinstall replaces it), the operator's key authorised, and a HOME
  (``disk/``) that survives reboots. ``rescue`` is OVH's rescue ramdisk: a host key made afresh
  at every rescue boot, only the ``rescueSshKey`` authorised (none: nobody can log in, as when
  OVH mails a password), an empty HOME (``rescue/``) at every boot;
* ``hostname`` (``bin/hostname``, first on PATH) prints the identity of the current mode: the
  server's own name on disk, ``rescue12-customer-eu`` in rescue;
* power: :meth:`HostFleet.power_off` kills the listener and every process of its sessions, as a
  hard reboot would; :meth:`HostFleet.on_power` takes the fake OVH API's power events;
* chaos: :meth:`HostFleet.refuse_connections` resets the next connections before sshd answers.

Safety: the hosts must not be able to touch this machine's disks, so sshd never runs as root.
As root it is started as the unprivileged account ``fleet-sandbox`` (made by
scripts/bootstrap.sh), otherwise as the current user. An unprivileged sshd can only log its own
user in (:attr:`HostFleet.login_user`) and needs no privilege separation directory. Its files
live under ``runtime_root`` (default ``/var/tmp/fleet-sandbox``), since root's HOME and
pytest's temporary directories (mode 0700) are closed to that account.

Processes are found again by what only they can have: descendants of a listener we started,
a socket whose local address is one of our hosts, or the ``FLEET_SANDBOX_HOST`` variable that
every session gets from sshd's ``SetEnv`` (it survives daemonised children). sshd gives every
connection and session its own process group, so a process-group kill would not reach them.

Layout of one host, ``<runtime_root>/<sandbox id>/<name>/`` (when root: owned by root, readable
by the sandbox account's group, except the HOMEs and ``run/``, which that account owns)::

    sshd_config             rewritten at every boot for its mode
    disk_host_key           the installed system's key (kept in state_dir across restarts)
    rescue_host_key         made at every rescue boot
    authorized_keys.disk    the operator's key (or the key given at the last reinstall)
    authorized_keys.rescue  the rescueSshKey of the current rescue boot, or empty
    bin/hostname            prints the identity of the current mode
    disk/  rescue/          HOME per mode
    run/                    sshd's pid file and log
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import ConfigError, FleetError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

log = logging.getLogger(__name__)

Mode = Literal["disk", "rescue"]

SSHD = Path("/usr/sbin/sshd")  # sshd re-executes itself per connection: an absolute path
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
SANDBOX_USER = "fleet-sandbox"
DEFAULT_RUNTIME_ROOT = Path("/var/tmp/fleet-sandbox")
RESCUE_HOSTNAME = "rescue12-customer-eu"
MARKER_VAR = "FLEET_SANDBOX_HOST"
RECORD_FILE = "hosts.json"
_RUNTIME_TAG = ".fleet-sandbox-runtime"  # only a directory holding this file is ever removed
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._+-]+")  # sshd_config and SetEnv take no quoting here
_MODE_ALIASES: dict[str, Mode] = {"disk": "disk", "harddisk": "disk", "rescue": "rescue"}
_KILL_TIMEOUT = 5.0
_LISTEN_TIMEOUT = 15.0
_START_THREADS = 8


# ---------------------------------------------------------------------------------------------
# keys


def generate_ed25519(comment: str = "") -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH PEM format, public ``authorized_keys`` line).

    In-process with ``cryptography``: spawning ssh-keygen for each of hundreds of hosts would
    cost more than starting their sshd.
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return private, _public_line(key, comment)


def _public_line(key: Ed25519PrivateKey, comment: str = "") -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {comment}".strip()


def _load_ed25519(path: Path) -> tuple[str, str]:
    """(private PEM, public line) of the key stored at ``path``."""
    private = path.read_text()
    try:
        key = serialization.load_ssh_private_key(private.encode(), password=None)
    except ValueError as exc:
        raise ConfigError(
            f"{path}: not an OpenSSH private key", hint="delete it to get a new one"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an ed25519 key", hint="delete it to get a new one")
    return private, _public_line(key)


def _key_pair(public_line: str) -> tuple[str, str]:
    """(type, base64 blob) of a public key line."""
    key_type, blob = public_line.split()[:2]
    return key_type, blob


def _check_public_key(line: str, what: str) -> str:
    fields = line.split()
    if len(fields) < 2 or "\n" in line.strip() or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise UsageError(f"{what}: not an OpenSSH public key line: {line[:60]!r}")
    return line.strip()


# ---------------------------------------------------------------------------------------------
# hosts and addresses


@dataclass(frozen=True)
class HostSpec:
    """One sandbox host. ``hostname`` is what ``hostname`` prints on disk (default: ``name``)."""

    name: str
    address: str
    port: int = 2222
    hostname: str | None = None

    @property
    def identity(self) -> str:
        return self.hostname or self.name


def allocate_addresses(count: int, port: int = 2222) -> list[str]:
    """``count`` loopback addresses 127.N.x.y (x = i // 250, y = i % 250 + 1) on a free N.

    N is the first of 100..199 where nothing listens in 127.N.0.0/16 and 127.N.0.1:``port``
    can be bound, i.e. no other sandbox runs there. Best effort: two sandboxes allocating at
    the same instant, or one whose first host is powered off, can still collide (their sshd
    then fail to start with a clear error).
    """
    if not 1 <= count <= 250 * 256:
        raise UsageError(f"cannot place {count} hosts in one loopback /16 (1..64000)")
    busy = {address.split(".")[1] for address, _ in _tcp_endpoints(listening_only=True)}
    for n in range(100, 200):
        if str(n) not in busy and _can_bind(f"127.{n}.0.1", port):
            return [f"127.{n}.{i // 250}.{i % 250 + 1}" for i in range(count)]
    raise ConfigError(
        f"no free loopback subnet 127.N.0.0/16 (N in 100..199) for port {port}",
        hint="stop other sandboxes (fleet sandbox down) or choose another port",
    )


def _can_bind(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _tcp_endpoints(*, listening_only: bool) -> list[tuple[str, int]]:
    """Local (address, port) of the IPv4 TCP sockets of this network namespace."""
    found = []
    for local, state, _inode in _tcp_table():
        if listening_only and state != "0A":
            continue
        hex_address, hex_port = local.split(":")
        packed = struct.pack("=I", int(hex_address, 16))
        found.append((socket.inet_ntoa(packed), int(hex_port, 16)))
    return found


def listening_endpoints() -> set[tuple[str, int]]:
    """(address, port) of every IPv4 TCP socket listening in this network namespace."""
    return set(_tcp_endpoints(listening_only=True))


def _tcp_table() -> list[tuple[str, str, int]]:
    """(local address as in /proc/net/tcp, state, socket inode) of every IPv4 TCP socket."""
    with open("/proc/net/tcp") as table:
        rows = table.readlines()[1:]
    out = []
    for row in rows:
        fields = row.split()
        if len(fields) >= 10:
            out.append((fields[1], fields[3], int(fields[9])))
    return out


def _proc_endpoint(address: str, port: int) -> str:
    """``address:port`` spelled as /proc/net/tcp does (the address as a native-endian int)."""
    (value,) = struct.unpack("=I", socket.inet_aton(address))
    return f"{value:08X}:{port:04X}"


def _validate_specs(specs: Sequence[HostSpec]) -> None:
    names: set[str] = set()
    endpoints: set[tuple[str, int]] = set()
    for spec in specs:
        if not _NAME.fullmatch(spec.name) or spec.name in ("rescue", "disk"):
            raise UsageError(f"{spec.name!r}: not a usable host name ([A-Za-z0-9._-])")
        if spec.hostname is not None and not _HOSTNAME.fullmatch(spec.hostname):
            raise UsageError(f"{spec.name}: not a hostname: {spec.hostname!r}")
        try:
            loopback = ipaddress.IPv4Address(spec.address).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageError(f"{spec.name}: {spec.address!r} is not an IPv4 loopback address")
        if not 1 <= spec.port <= 65535:
            raise UsageError(f"{spec.name}: bad port {spec.port}")
        if spec.name in names or (spec.address, spec.port) in endpoints:
            raise UsageError(f"{spec.name}: duplicate name or address {spec.address}:{spec.port}")
        names.add(spec.name)
        endpoints.add((spec.address, spec.port))


# ---------------------------------------------------------------------------------------------
# the account sshd runs as, and the files it reads


@dataclass(frozen=True)
class _Account:
    """Who sshd and its sessions run as. ``as_root``: we are root, so we chown and drop to it."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str
    as_root: bool


def _account(user: str) -> _Account:
    """The sandbox account when root, else the current user."""
    if os.geteuid() != 0:
        try:
            me = pwd.getpwuid(os.geteuid())
        except KeyError as exc:
            raise ConfigError(f"uid {os.geteuid()} has no passwd entry: sshd needs one") from exc
        return _Account(me.pw_name, me.pw_uid, me.pw_gid, me.pw_dir, me.pw_shell, as_root=False)
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise ConfigError(
            f"the unprivileged account {user!r} the sandbox hosts run as does not exist",
            hint="run scripts/bootstrap.sh as root: it creates that account",
        ) from exc
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ConfigError(f"the sandbox account {user!r} has uid or gid 0: refusing to use it")
    return _Account(
        entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell, as_root=True
    )


def _write(path: Path, text: str, account: _Account, mode: int) -> None:
    """Atomically write a file sshd or a session reads (root-owned, group = the account's)."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if account.as_root:
        os.chown(tmp, 0, account.gid)
    tmp.chmod(mode if account.as_root else mode & 0o700)
    tmp.replace(path)


def _mkdir(path: Path, account: _Account, *, owned: bool) -> None:
    """A directory for sshd: ``owned`` ones (HOMEs, run/) belong to the account."""
    path.mkdir(exist_ok=True)
    if account.as_root:
        os.chown(path, account.uid if owned else 0, account.gid)
    path.chmod(0o700 if owned or not account.as_root else 0o750)


def _fresh_dir(path: Path, account: _Account) -> None:
    """Empty ``path`` (a HOME) and make it again, as a newly booted ramdisk or install has."""
    if path.exists():
        _rmtree(path)
    _mkdir(path, account, owned=True)


def _rmtree(path: Path) -> None:
    """Remove a tree sessions wrote to. Never follows the symlinks they may have planted; makes
    the directories they closed (chmod 0) writable again, which matters when not root."""

    def unlock(_function: object, failed: str, _exc: object) -> None:
        parent = Path(failed).parent
        parent.chmod(0o700)
        if Path(failed).is_dir() and not Path(failed).is_symlink():
            Path(failed).chmod(0o700)
            shutil.rmtree(failed)
        else:
            Path(failed).unlink(missing_ok=True)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=unlock)
    else:
        shutil.rmtree(path, onerror=unlock)


def _check_traversable(path: Path, account: _Account) -> None:
    """Every parent of ``path`` must let the account through, or sshd cannot read its files."""
    for parent in path.parents:
        mode = parent.stat()
        ok = (
            mode.st_mode & 0o001
            or (mode.st_gid == account.gid and mode.st_mode & 0o010)
            or (mode.st_uid == account.uid and mode.st_mode & 0o100)
        )
        if not ok:
            raise ConfigError(
                f"{parent}: the account {account.name!r} cannot enter this directory",
                hint="choose a runtime_root under a world-traversable directory, e.g. /var/tmp",
            )


def _force_command(shell: str) -> str:
    """sshd's ForceCommand: start in HOME, as a login on the real server does, then run the
    client's command (or an interactive shell) with bash. Inline, so that it costs no process
    when the account's shell is bash already (sshd runs it as ``$SHELL -c``)."""
    inline = 'cd "$HOME" 2>/dev/null || cd /; eval "${SSH_ORIGINAL_COMMAND:-exec /bin/bash -i}"'
    if Path(shell).name == "bash":
        return inline
    return f"exec /bin/bash -c '{inline}'"


def _hostname_script(identity: str) -> str:
    return (
        "#!/bin/sh\n"
        "# The identity of this fleet sandbox host in its current boot mode.\n"
        f"name='{identity}'\n"
        'case "${1:-}" in\n'
        '  -s|--short) echo "${name%%.*}" ;;\n'
        '  *) echo "$name" ;;\n'
        "esac\n"
    )


# ---------------------------------------------------------------------------------------------
# finding and killing the processes of our hosts


def _process_table(uid: int) -> dict[int, int]:
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


def _descendants(table: dict[int, int], roots: Collection[int]) -> set[int]:
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


def _has_marker(pid: int, markers: Collection[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return any(item in markers for item in environ.read().split(b"\0"))
    except OSError:
        return False


def _holds_socket(pid: int, inodes: Collection[int]) -> bool:
    try:
        links = [str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link.startswith("socket:[") and int(link[8:-1]) in inodes for link in links)


def _sandbox_processes(
    uid: int, roots: Collection[int], endpoints: Collection[str], markers: Collection[bytes]
) -> set[int]:
    """Our processes: descendants of ``roots``, holders of a socket on one of ``endpoints``
    (listeners and connection processes), and sessions whose environment has a marker."""
    table = _process_table(uid)
    inodes = {inode for local, _, inode in _tcp_table() if local in endpoints and inode}
    found = _descendants(table, roots)
    for pid in table:
        if pid not in found and (_has_marker(pid, markers) or _holds_socket(pid, inodes)):
            found.add(pid)
    return found


def _kill_sandbox_processes(
    uid: int, roots: Collection[int], endpoints: Collection[str], markers: Collection[bytes]
) -> set[int]:
    """SIGKILL our processes in rounds until none is left (a session may fork meanwhile)."""
    killed: set[int] = set()
    deadline = time.monotonic() + _KILL_TIMEOUT
    for _ in range(200):
        found = _sandbox_processes(uid, roots, endpoints, markers)
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
    left = _sandbox_processes(uid, roots, endpoints, markers)
    if left:
        raise FleetError(f"sandbox processes survived SIGKILL: {sorted(left)[:20]}")
    return killed


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset, as a refused or dropped connection looks to the client."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _bind_listener(address: str, port: int) -> socket.socket:
    """Listen on address:port once the stopped sshd's socket is gone (bounded wait)."""
    deadline = time.monotonic() + _KILL_TIMEOUT
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


# ---------------------------------------------------------------------------------------------
# chaos: refused connections


class _Refuser:
    """Stands in for a host's sshd and resets its next ``count`` connections.

    The last one is held open until ``done`` has brought sshd back, so that a client retrying
    after its ``count``-th failure meets sshd, not a closed port.
    """

    def __init__(
        self,
        listener: socket.socket,
        count: int,
        timeout: float,
        done: Callable[[_Refuser], None],
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

    def cancel(self, timeout: float = _KILL_TIMEOUT) -> None:
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
                _reset(last)

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
            _reset(conn)
        return None


# ---------------------------------------------------------------------------------------------
# the fleet


class PowerEventLike(Protocol):
    """What :meth:`HostFleet.on_power` reads from the fake OVH API's power events."""

    @property
    def kind(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def rescue_ssh_key(self) -> str | None: ...
    @property
    def reinstalled(self) -> bool: ...


@dataclass
class _Host:
    """Mutable state of one host; ``lock`` serialises its power and chaos operations."""

    spec: HostSpec
    dir: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    disk_public: str = ""
    disk_authorized: str = ""
    rescue_public: str | None = None
    mode: Mode | None = None
    process: subprocess.Popen[bytes] | None = None
    refuser: _Refuser | None = None

    def home(self, mode: Mode) -> Path:
        return self.dir / mode


class HostFleet:
    """The sandbox's sshd hosts: start, power, chaos, stop. Thread-safe per host.

    ``start`` and ``stop`` must not run concurrently with other calls. Everything it starts is
    killed by ``stop`` (also after a crash: :func:`stop_recorded` with the same ``state_dir``).
    """

    def __init__(
        self,
        specs: Sequence[HostSpec],
        *,
        state_dir: Path,
        operator_public_key: str,
        sandbox_id: str,
        runtime_root: Path | None = None,
        sandbox_user: str = SANDBOX_USER,
        rescue_hostname: str = RESCUE_HOSTNAME,
        sshd_path: Path = SSHD,
    ) -> None:
        _validate_specs(specs)
        if not _NAME.fullmatch(sandbox_id):
            raise UsageError(f"sandbox id {sandbox_id!r}: use [A-Za-z0-9._-] only")
        if not _HOSTNAME.fullmatch(rescue_hostname):
            raise UsageError(f"not a hostname: {rescue_hostname!r}")
        self._operator_key = _check_public_key(operator_public_key, "operator public key")
        self._state_dir = Path(state_dir)
        self._sandbox_id = sandbox_id
        self._runtime_root = Path(runtime_root or DEFAULT_RUNTIME_ROOT).absolute()
        self._runtime_dir = self._runtime_root / sandbox_id
        if not _SAFE_PATH.fullmatch(str(self._runtime_dir)):
            raise UsageError(f"{self._runtime_dir}: runtime path must be plain [A-Za-z0-9/._+-]")
        self._account = _account(sandbox_user)
        self._rescue_hostname = rescue_hostname
        self._sshd = sshd_path
        self._hosts = {s.name: _Host(s, self._runtime_dir / s.name) for s in specs}
        self._created_root = False
        self._started = False

    # -- queries ---------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[HostSpec, ...]:
        return tuple(host.spec for host in self._hosts.values())

    @property
    def login_user(self) -> str:
        """The only user the hosts let in (an unprivileged sshd serves only its own user)."""
        return self._account.name

    @property
    def runtime_dir(self) -> Path:
        return self._runtime_dir

    def host_dir(self, name: str) -> Path:
        return self._host(name).dir

    def home_dir(self, name: str, mode: Mode) -> Path:
        """HOME of the host's sessions in ``mode`` (``disk/`` is the installed system's)."""
        return self._host(name).home(mode)

    def mode(self, name: str) -> Mode | None:
        """The mode the host runs in, None when powered off."""
        return self._host(name).mode

    def disk_host_key(self, name: str) -> tuple[str, str]:
        """(type, base64) of the installed system's host key."""
        return _key_pair(self._host(name).disk_public)

    def rescue_host_key(self, name: str) -> tuple[str, str] | None:
        """(type, base64) of the last rescue boot's host key, None before any rescue boot."""
        public = self._host(name).rescue_public
        return _key_pair(public) if public else None

    def pids(self) -> dict[str, int]:
        """Listener PID of every host whose sshd runs now."""
        return {name: host.process.pid for name, host in self._hosts.items() if host.process}

    def known_hosts_lines(self) -> list[str]:
        """The disk host keys in OpenSSH known_hosts format."""
        lines = []
        for host in self._hosts.values():
            spec = host.spec
            where = spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"
            key_type, blob = _key_pair(host.disk_public)
            lines.append(f"{where} {key_type} {blob}")
        return lines

    def _host(self, name: str) -> _Host:
        try:
            return self._hosts[name]
        except KeyError:
            raise UsageError(f"{name}: no such sandbox host") from None

    def _require_started(self) -> None:
        if not self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: hosts are not started")

    def _marker(self, host: _Host) -> bytes:
        return f"{MARKER_VAR}={self._sandbox_id}/{host.spec.name}".encode()

    # -- start and stop --------------------------------------------------------------------

    def start(self, initial_mode: Mode = "disk") -> None:
        """Create every host's files and start all their sshd; return once all listen."""
        if initial_mode not in ("disk", "rescue"):
            raise UsageError(f"unknown boot mode {initial_mode!r}")
        if self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: hosts already started")
        began = time.monotonic()
        self._prepare_runtime_dir()
        self._write_record()
        try:
            # Threads overlap the file system calls and the wait for each sshd's exec, which
            # release the GIL: this is where starting hundreds of hosts spends its time.
            with ThreadPoolExecutor(_START_THREADS, thread_name_prefix="sandbox-start") as pool:
                list(
                    pool.map(
                        functools.partial(self._first_boot, mode=initial_mode), self._hosts.values()
                    )
                )
            self._wait_listening(list(self._hosts.values()), max(30.0, 0.2 * len(self._hosts)))
        except BaseException:
            self.stop()
            raise
        self._started = True
        log.info("%d sandbox hosts up in %.1f s", len(self._hosts), time.monotonic() - began)

    def _first_boot(self, host: _Host, mode: Mode) -> None:
        self._prepare_host(host)
        self._boot_files(host, mode, None)
        host.mode = mode
        host.process = self._spawn(host)

    def stop(self) -> None:
        """Kill every process of every host, remove the runtime directory. Idempotent."""
        self._started = False  # from now on power and chaos calls are refused
        for host in self._hosts.values():
            with host.lock:
                refuser, host.refuser = host.refuser, None
            if refuser:
                refuser.cancel()
        with contextlib.ExitStack() as locks:
            for host in self._hosts.values():
                locks.enter_context(host.lock)
                host.mode = None
            self._kill(list(self._hosts.values()))
        if (self._runtime_dir / _RUNTIME_TAG).exists():
            _rmtree(self._runtime_dir)
        if self._created_root:
            with contextlib.suppress(OSError):
                self._runtime_root.rmdir()  # only once no other sandbox uses it
        (self._state_dir / RECORD_FILE).unlink(missing_ok=True)

    def _prepare_runtime_dir(self) -> None:
        """A fresh runtime directory the account can enter (a crashed run's is cleaned up)."""
        account = self._account
        if self._runtime_dir.exists():
            if not (self._runtime_dir / _RUNTIME_TAG).exists():
                raise ConfigError(
                    f"{self._runtime_dir} exists and is not a sandbox runtime directory",
                    hint="choose another runtime_root or sandbox id",
                )
            stop_recorded(self._state_dir)  # a previous run of this sandbox that crashed
            _rmtree(self._runtime_dir)
        if not self._runtime_root.exists():
            self._runtime_root.mkdir(mode=0o755, parents=True)
            self._created_root = True
        if account.as_root:
            _check_traversable(self._runtime_dir, account)
        self._runtime_dir.mkdir()
        _write(self._runtime_dir / _RUNTIME_TAG, f"{self._sandbox_id}\n", account, 0o640)
        _mkdir(self._runtime_dir, account, owned=False)
        self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self._state_dir / "host-keys").mkdir(mode=0o700, exist_ok=True)
        if account.as_root and not Path(account.home).is_dir():
            log.warning(
                "HOME of %s (%s) does not exist: sshd prints 'Could not chdir to home "
                "directory' on every session's stderr",
                account.name,
                account.home,
            )

    def _prepare_host(self, host: _Host) -> None:
        """The host's directories and its installed system (disk key, disk HOME)."""
        account = self._account
        _mkdir(host.dir, account, owned=False)
        for sub in ("bin", "run", "disk", "rescue"):
            _mkdir(host.dir / sub, account, owned=sub in ("run", "disk", "rescue"))
        stored = self._state_dir / "host-keys" / f"{host.spec.name}.ed25519"
        if stored.exists():
            private, public = _load_ed25519(stored)
        else:
            private, public = self._new_disk_key(stored)
        _write(host.dir / "disk_host_key", private, account, 0o640)
        host.disk_public = public
        host.disk_authorized = self._operator_key

    def _new_disk_key(self, stored: Path) -> tuple[str, str]:
        private, public = generate_ed25519()
        stored.unlink(missing_ok=True)
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(private)
        return private, public

    def _write_record(self) -> None:
        """What :func:`stop_recorded` needs to find our processes after a crash."""
        record = {
            "sandbox_id": self._sandbox_id,
            "uid": self._account.uid,
            "runtime_dir": str(self._runtime_dir),
            "hosts": [[h.spec.name, h.spec.address, h.spec.port] for h in self._hosts.values()],
        }
        path = self._state_dir / RECORD_FILE
        path.write_text(json.dumps(record, indent=1) + "\n")

    # -- power -----------------------------------------------------------------------------

    def power_on(
        self,
        name: str,
        mode: Mode,
        rescue_ssh_key: str | None = None,
        reinstalled: bool = False,
        installed_ssh_key: str | None = None,
    ) -> None:
        """Boot ``name`` in ``mode`` and return once sshd listens. A running host reboots.

        A rescue boot gets a new host key, an empty HOME, and lets in ``rescue_ssh_key`` only
        (nobody without one). ``reinstalled``: the installed system was just reinstalled, so
        its host key is new, its HOME empty, and ``installed_ssh_key`` (default: the
        operator's key) the one authorised.
        """
        if mode not in ("disk", "rescue"):
            raise UsageError(f"{name}: unknown boot mode {mode!r}")
        if rescue_ssh_key:
            rescue_ssh_key = _check_public_key(rescue_ssh_key, f"{name}: rescue key")
        host = self._host(name)
        with host.lock:
            self._require_started()
            self._halt(host)
            if reinstalled:
                self._reinstall(host, installed_ssh_key)
            self._boot_files(host, mode, rescue_ssh_key)
            host.mode = mode
            self._launch(host)

    def power_off(self, name: str) -> None:
        """Cut the power: kill the listener and all its sessions, as a hard reboot does."""
        host = self._host(name)
        with host.lock:
            self._require_started()
            self._halt(host)

    def on_power(self, name: str, event: PowerEventLike) -> None:
        """Apply a power event of the fake OVH API (``kind`` "off" or "on")."""
        if event.kind == "off":
            self.power_off(name)
            return
        mode = _MODE_ALIASES.get(event.mode)
        if event.kind != "on" or mode is None:
            raise UsageError(f"{name}: unknown power event {event.kind!r} / {event.mode!r}")
        installed = getattr(event, "installed_ssh_key", None)
        self.power_on(
            name,
            mode,
            rescue_ssh_key=event.rescue_ssh_key,
            reinstalled=event.reinstalled,
            installed_ssh_key=installed if isinstance(installed, str) else None,
        )

    def _halt(self, host: _Host) -> None:
        """Power off (caller holds ``host.lock``)."""
        refuser, host.refuser = host.refuser, None
        if refuser:
            refuser.cancel()
        self._kill([host])
        host.mode = None

    def _kill(self, hosts: Sequence[_Host]) -> None:
        """Kill the listeners and every process of ``hosts`` (sessions too), reap listeners."""
        roots = [host.process.pid for host in hosts if host.process]
        endpoints = {_proc_endpoint(h.spec.address, h.spec.port) for h in hosts}
        markers = {self._marker(host) for host in hosts}
        _kill_sandbox_processes(self._account.uid, roots, endpoints, markers)
        for host in hosts:
            if host.process:
                try:
                    host.process.wait(_KILL_TIMEOUT)
                except subprocess.TimeoutExpired as exc:
                    raise FleetError(f"{host.spec.name}: sshd did not exit") from exc
                host.process = None

    def _reinstall(self, host: _Host, installed_ssh_key: str | None) -> None:
        """A fresh installed system: new disk host key, empty disk HOME, the install's key."""
        stored = self._state_dir / "host-keys" / f"{host.spec.name}.ed25519"
        private, host.disk_public = self._new_disk_key(stored)
        _write(host.dir / "disk_host_key", private, self._account, 0o640)
        _fresh_dir(host.home("disk"), self._account)
        key = installed_ssh_key or self._operator_key
        host.disk_authorized = _check_public_key(key, f"{host.spec.name}: installed key")

    def _boot_files(self, host: _Host, mode: Mode, rescue_ssh_key: str | None) -> None:
        """What changes at a boot: sshd_config, identity, and for rescue a new key and HOME."""
        account = self._account
        if mode == "rescue":
            private, host.rescue_public = generate_ed25519()
            _write(host.dir / "rescue_host_key", private, account, 0o640)
            _write(host.dir / "authorized_keys.rescue", f"{rescue_ssh_key or ''}\n", account, 0o640)
            _fresh_dir(host.home("rescue"), account)
        else:
            _write(host.dir / "authorized_keys.disk", f"{host.disk_authorized}\n", account, 0o640)
        identity = self._rescue_hostname if mode == "rescue" else host.spec.identity
        _write(host.dir / "bin" / "hostname", _hostname_script(identity), account, 0o750)
        _write(host.dir / "sshd_config", self._sshd_config(host, mode), account, 0o640)

    def _sshd_config(self, host: _Host, mode: Mode) -> str:
        spec, d = host.spec, host.dir
        path = f"{d}/bin:/usr/local/bin:/usr/bin:/bin"
        sftp = f"Subsystem sftp {SFTP_SERVER}\n" if SFTP_SERVER.exists() else ""
        return (
            f"# {spec.name}, {mode} boot: written by fleet.sandbox.hosts at every boot\n"
            f"ListenAddress {spec.address}:{spec.port}\n"
            f"HostKey {d}/{mode}_host_key\n"
            f"PidFile {d}/run/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys.{mode}\n"
            f"AllowUsers {self._account.name}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nHostbasedAuthentication no\n"
            "UsePAM no\nStrictModes no\nUseDNS no\nPermitUserEnvironment no\n"
            "PrintMotd no\nPrintLastLog no\nX11Forwarding no\nAllowTcpForwarding no\n"
            "AllowAgentForwarding no\nPermitTunnel no\nLoginGraceTime 30\n"
            # VERBOSE logs every connection ("Connection from ..."): the sandbox's own count
            # of SSH contacts, which tests read to prove a refused command reached no host
            "MaxStartups 100:30:200\nMaxSessions 20\nLogLevel VERBOSE\n"
            f"{sftp}"
            f"ForceCommand {_force_command(self._account.shell)}\n"
            f"SetEnv HOME={d}/{mode} PATH={path} FLEET_SANDBOX_MODE={mode} "
            f"{self._marker(host).decode()}\n"
        )

    def _spawn(self, host: _Host) -> subprocess.Popen[bytes]:
        """Start the host's sshd in the foreground, in its own session, as the account."""
        account = self._account
        command = [str(self._sshd), "-D", "-f", f"{host.dir}/sshd_config"]
        command += ["-E", f"{host.dir}/run/sshd.log"]
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"},
                start_new_session=True,
                umask=0o022,
                user=account.uid if account.as_root else None,
                group=account.gid if account.as_root else None,
                extra_groups=[] if account.as_root else None,
            )
        except OSError as exc:
            raise ConfigError(f"{host.spec.name}: cannot run {self._sshd}: {exc}") from exc

    def _launch(self, host: _Host) -> None:
        """Spawn sshd and wait until it listens (caller holds ``host.lock``)."""
        host.process = self._spawn(host)
        try:
            self._wait_listening([host], _LISTEN_TIMEOUT)
        except BaseException:
            self._kill([host])
            host.mode = None
            raise

    def _wait_listening(self, hosts: Sequence[_Host], timeout: float) -> None:
        """Poll /proc/net/tcp (no connection made) until every host's sshd listens."""
        pending = {_proc_endpoint(h.spec.address, h.spec.port): h for h in hosts}
        deadline = time.monotonic() + timeout
        while pending:
            listening = {local for local, state, _ in _tcp_table() if state == "0A"}
            for endpoint in [e for e in pending if e in listening]:
                del pending[endpoint]
            for host in pending.values():
                if host.process is None or host.process.poll() is not None:
                    raise self._start_error(host, "sshd exited at start")
            if pending and time.monotonic() > deadline:
                raise self._start_error(next(iter(pending.values())), "sshd is not listening")
            if pending:
                time.sleep(0.02)

    def _start_error(self, host: _Host, what: str) -> ConfigError:
        try:
            tail = (host.dir / "run" / "sshd.log").read_text()[-500:].strip()
        except OSError:
            tail = ""
        spec = host.spec
        return ConfigError(
            f"{spec.name}: {what} on {spec.address}:{spec.port}: {tail or 'no log'}",
            hint="another sandbox may use this address: see allocate_addresses()",
        )

    # -- chaos -----------------------------------------------------------------------------

    def refuse_connections(self, name: str, count: int, *, timeout: float = 60.0) -> None:
        """Make the host's next ``count`` TCP connections fail before sshd answers.

        sshd stops listening (established sessions go on) and a socket of ours takes its
        place: it accepts each connection and closes it with a TCP reset, so the client sees
        "connection reset" before any SSH banner. The ``count``-th connection is held until
        sshd listens again, then reset: a client that retries after its ``count``-th failure
        gets in. Connections made while sshd is swapped out (a few ms) are refused by the
        kernel, uncounted: a client connecting concurrently may see more failures. After
        ``timeout`` seconds, sshd comes back even if fewer connections came. Returns at once.
        """
        if count < 1:
            raise UsageError(f"{name}: refuse at least one connection, not {count}")
        host = self._host(name)
        with host.lock:
            self._require_started()
            if host.mode is None or host.process is None:
                raise UsageError(f"{name}: powered off or already refusing connections")
            process, host.process = host.process, None
            process.kill()  # the listener only: connection processes have their own sessions
            process.wait(_KILL_TIMEOUT)
            listener = _bind_listener(host.spec.address, host.spec.port)
            done = functools.partial(self._end_refusal, host)
            host.refuser = _Refuser(listener, count, timeout, done, name)
            host.refuser.start()

    def _end_refusal(self, host: _Host, refuser: _Refuser) -> None:
        """Bring sshd back, unless the host was powered off or stopped meanwhile."""
        with host.lock:
            if host.refuser is refuser:
                host.refuser = None
                self._launch(host)


def stop_recorded(state_dir: Path) -> int:
    """Kill the processes of the sandbox hosts recorded in ``state_dir`` and remove their
    runtime directory: the cleanup after a process that ran a :class:`HostFleet` died.

    Returns how many processes were killed. Only processes of the recorded account that hold
    a socket on a recorded address, or carry the sandbox's session marker, are touched.
    """
    path = Path(state_dir) / RECORD_FILE
    if not path.exists():
        return 0
    try:
        record = json.loads(path.read_text())
        sandbox_id = str(record["sandbox_id"])
        hosts = [(str(n), str(a), int(p)) for n, a, p in record["hosts"]]
        uid, runtime_dir = int(record["uid"]), Path(record["runtime_dir"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable sandbox host record") from exc
    endpoints = {_proc_endpoint(address, port) for _, address, port in hosts}
    markers = {f"{MARKER_VAR}={sandbox_id}/{name}".encode() for name, _, _ in hosts}
    killed = _kill_sandbox_processes(uid, (), endpoints, markers)
    if (runtime_dir / _RUNTIME_TAG).exists():
        _rmtree(runtime_dir)
    path.unlink()
    return len(killed)
