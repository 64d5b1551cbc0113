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
* chaos: :meth:`HostFleet.refuse_connections` resets the next connections before sshd answers;
* ``sudo`` (``bin/sudo``) speaks sudo's password protocol (see
  :func:`~fleet.sandbox.sshd_files.sudo_script`), with the password set by
  :meth:`HostFleet.set_sudo_password`;
* a jump host (``jump=``): the servers then live in a network namespace of their own and the
  jump host's sshd is the only way to them (see :mod:`fleet.sandbox.netns`).

Safety: the hosts must not be able to touch this machine's disks, so sshd never runs as root.
As root it is started as the unprivileged account ``fleet-sandbox`` (made by
scripts/bootstrap.sh), otherwise as the current user. An unprivileged sshd can only log its own
user in (:attr:`HostFleet.login_user`) and needs no privilege separation directory. Its files
live under ``runtime_root`` (default ``/var/tmp/fleet-sandbox``), since root's HOME and
pytest's temporary directories (mode 0700) are closed to that account.

Processes are found again as :mod:`fleet.sandbox.procs` says (sshd gives every connection and
session its own process group, so a process-group kill would not reach them).
The files of one host are listed in :mod:`fleet.sandbox.hostboot`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import FleetError, UsageError
from fleet.sandbox.account import account_for, fresh_dir, make_dir, rmtree, write_file
from fleet.sandbox.hostboot import (
    HostState,
    Mode,
    PowerEventLike,
    new_disk_key,
    spawn_sshd,
    wait_listening,
)
from fleet.sandbox.netinfo import (
    allocate_addresses,
    listening_endpoints,
    proc_endpoint,
)
from fleet.sandbox.netns import JumpListener, Namespace
from fleet.sandbox.procs import KILL_TIMEOUT, kill_sandbox_processes
from fleet.sandbox.refuser import Refuser, bind_listener
from fleet.sandbox.runtime import (
    DEFAULT_RUNTIME_ROOT,
    HOSTNAME,
    NAME,
    RECORD_FILE,
    RUNTIME_TAG,
    SAFE_PATH,
    SANDBOX_USER,
    SSHD,
    HostSpec,
    marker,
    prepare_runtime_dir,
    stop_recorded,
    validate_specs,
    write_record,
)
from fleet.sandbox.sshd_files import SshdConfig, hostname_script, sudo_script
from fleet.sandbox.sshkeys import check_public_key, generate_ed25519, key_pair, load_ed25519

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "RESCUE_HOSTNAME",
    "HostFleet",
    "HostSpec",
    "PowerEventLike",
    "allocate_addresses",
    "generate_ed25519",
    "listening_endpoints",
    "stop_recorded",
]

log = logging.getLogger(__name__)


RESCUE_HOSTNAME = "rescue12-customer-eu"
_MODE_ALIASES: dict[str, Mode] = {"disk": "disk", "harddisk": "disk", "rescue": "rescue"}
_LISTEN_TIMEOUT = 15.0
_START_THREADS = 8
_SUDO_PASSWORD = "sudo_password.sha256"


class HostFleet:
    """The sandbox's sshd hosts: start, power, chaos, stop. Thread-safe per host.

    ``start`` and ``stop`` must not run concurrently with other calls. Everything it starts is
    killed by ``stop`` (also after a crash: :func:`stop_recorded` with the same ``state_dir``).
    With ``jump``, the hosts of ``specs`` are reachable only through that jump host.
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
        jump: HostSpec | None = None,
    ) -> None:
        validate_specs([*specs, *([jump] if jump else [])])
        if not NAME.fullmatch(sandbox_id):
            raise UsageError(f"sandbox id {sandbox_id!r}: use [A-Za-z0-9._-] only")
        if not HOSTNAME.fullmatch(rescue_hostname):
            raise UsageError(f"not a hostname: {rescue_hostname!r}")
        self._operator_key = check_public_key(operator_public_key, "operator public key")
        self._state_dir = Path(state_dir)
        self._sandbox_id = sandbox_id
        self._runtime_root = Path(runtime_root or DEFAULT_RUNTIME_ROOT).absolute()
        self._runtime_dir = self._runtime_root / sandbox_id
        if not SAFE_PATH.fullmatch(str(self._runtime_dir)):
            raise UsageError(f"{self._runtime_dir}: runtime path must be plain [A-Za-z0-9/._+-]")
        self._account = account_for(sandbox_user)
        self._rescue_hostname = rescue_hostname
        self._sshd = sshd_path
        self._hosts = {
            s.name: HostState(s, self._runtime_dir / s.name, isolated=jump is not None)
            for s in specs
        }
        self._jump = HostState(jump, self._runtime_dir / jump.name) if jump else None
        self._netns: Namespace | None = None
        self._listener: JumpListener | None = None
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
        return key_pair(self._host(name).disk_public)

    def rescue_host_key(self, name: str) -> tuple[str, str] | None:
        """(type, base64) of the last rescue boot's host key, None before any rescue boot."""
        public = self._host(name).rescue_public
        return key_pair(public) if public else None

    @property
    def jump(self) -> HostSpec | None:
        """The jump host, the only way to the others (None: they are directly reachable)."""
        return self._jump.spec if self._jump else None

    def jump_host_key(self) -> tuple[str, str]:
        """(type, base64) of the jump host's key."""
        if self._jump is None:
            raise UsageError("this sandbox has no jump host")
        return key_pair(self._jump.disk_public)

    def pids(self) -> dict[str, int]:
        """Listener PID of every host whose sshd runs now."""
        return {name: host.process.pid for name, host in self._hosts.items() if host.process}

    def known_hosts_lines(self) -> list[str]:
        """The disk host keys in OpenSSH known_hosts format."""
        lines = []
        for host in self._hosts.values():
            spec = host.spec
            where = spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"
            key_type, blob = key_pair(host.disk_public)
            lines.append(f"{where} {key_type} {blob}")
        return lines

    def _host(self, name: str) -> HostState:
        try:
            return self._hosts[name]
        except KeyError:
            raise UsageError(f"{name}: no such sandbox host") from None

    def _require_started(self) -> None:
        if not self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: hosts are not started")

    def _marker(self, host: HostState) -> bytes:
        return marker(self._sandbox_id, host.spec.name)

    def set_sudo_password(self, name: str, password: str | None) -> None:
        """Make ``sudo`` on ``name`` ask for ``password`` (None: ask for none)."""
        host = self._host(name)
        digest = hashlib.sha256(password.encode()).hexdigest() if password is not None else ""
        write_file(host.dir / _SUDO_PASSWORD, digest, self._account, 0o640)

    # -- start and stop --------------------------------------------------------------------

    def start(self, initial_mode: Mode = "disk") -> None:
        """Create every host's files and start all their sshd; return once all listen."""
        if initial_mode not in ("disk", "rescue"):
            raise UsageError(f"unknown boot mode {initial_mode!r}")
        if self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: hosts already started")
        began = time.monotonic()
        self._created_root = prepare_runtime_dir(
            self._runtime_root, self._runtime_dir, self._state_dir, self._sandbox_id, self._account
        )
        self._write_record()
        try:
            if self._jump is not None:
                self._netns = Namespace.create(f"fleet-{self._sandbox_id}"[:64])
            # Threads overlap the file system calls and the wait for each sshd's exec, which
            # release the GIL: this is where starting hundreds of hosts spends its time.
            with ThreadPoolExecutor(_START_THREADS, thread_name_prefix="sandbox-start") as pool:
                list(
                    pool.map(
                        functools.partial(self._first_boot, mode=initial_mode), self._hosts.values()
                    )
                )
            wait_listening(list(self._hosts.values()), max(30.0, 0.2 * len(self._hosts)))
            if self._jump is not None:
                self._start_jump(self._jump)
        except BaseException:
            self.stop()
            raise
        self._started = True
        log.info("%d sandbox hosts up in %.1f s", len(self._hosts), time.monotonic() - began)

    def _first_boot(self, host: HostState, mode: Mode) -> None:
        self._prepare_host(host)
        self._boot_files(host, mode, None)
        host.mode = mode
        host.process = spawn_sshd(host, self._sshd, self._account, self._netns)

    def stop(self) -> None:
        """Kill every process of every host, remove the runtime directory. Idempotent."""
        self._started = False  # from now on power and chaos calls are refused
        for host in self._hosts.values():
            with host.lock:
                refuser, host.refuser = host.refuser, None
            if refuser:
                refuser.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with contextlib.ExitStack() as locks:
            for host in self._hosts.values():
                locks.enter_context(host.lock)
                host.mode = None
            self._kill([*self._hosts.values(), *([self._jump] if self._jump else [])])
        if listener is not None:
            listener.reap()
        if self._netns is not None:
            self._netns.delete()
            self._netns = None
        if (self._runtime_dir / RUNTIME_TAG).exists():
            rmtree(self._runtime_dir)
        if self._created_root:
            with contextlib.suppress(OSError):
                self._runtime_root.rmdir()  # only once no other sandbox uses it
        (self._state_dir / RECORD_FILE).unlink(missing_ok=True)

    def _start_jump(self, jump: HostState) -> None:
        """The jump host: its files, then the listener that runs ``sshd -i`` per connection."""
        assert self._netns is not None
        self._prepare_host(jump)
        self._boot_files(jump, "disk", None)
        jump.mode = "disk"
        self._listener = JumpListener.serve(
            jump.spec, jump.dir, self._netns, self._account, self._sshd
        )

    def _prepare_host(self, host: HostState) -> None:
        """The host's directories and its installed system (disk key, disk HOME)."""
        account = self._account
        make_dir(host.dir, account, owned=False)
        for sub in ("bin", "run", "disk", "rescue"):
            make_dir(host.dir / sub, account, owned=sub in ("run", "disk", "rescue"))
        stored = self._state_dir / "host-keys" / f"{host.spec.name}.ed25519"
        if stored.exists():
            private, public = load_ed25519(stored)
        else:
            private, public = new_disk_key(stored)
        write_file(host.dir / "disk_host_key", private, account, 0o640)
        write_file(
            host.dir / "bin" / "sudo", sudo_script(host.dir / _SUDO_PASSWORD), account, 0o750
        )
        host.disk_public = public
        host.disk_authorized = self._operator_key

    def _write_record(self) -> None:
        specs = [h.spec for h in self._hosts.values()] + ([self._jump.spec] if self._jump else [])
        netns = f"fleet-{self._sandbox_id}"[:64] if self._jump else None
        write_record(
            self._state_dir, self._sandbox_id, self._account.uid, self._runtime_dir, specs, netns
        )

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
            rescue_ssh_key = check_public_key(rescue_ssh_key, f"{name}: rescue key")
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

    def _halt(self, host: HostState) -> None:
        """Power off (caller holds ``host.lock``)."""
        refuser, host.refuser = host.refuser, None
        if refuser:
            refuser.cancel()
        self._kill([host])
        host.mode = None

    def _kill(self, hosts: Sequence[HostState]) -> None:
        """Kill the listeners and every process of ``hosts`` (sessions too), reap listeners."""
        roots = [host.process.pid for host in hosts if host.process]
        endpoints = {proc_endpoint(h.spec.address, h.spec.port) for h in hosts}
        markers = {self._marker(host) for host in hosts}
        kill_sandbox_processes(self._account.uid, roots, endpoints, markers)
        for host in hosts:
            if host.process:
                try:
                    host.process.wait(KILL_TIMEOUT)
                except subprocess.TimeoutExpired as exc:
                    raise FleetError(f"{host.spec.name}: sshd did not exit") from exc
                host.process = None

    def _reinstall(self, host: HostState, installed_ssh_key: str | None) -> None:
        """A fresh installed system: new disk host key, empty disk HOME, the install's key."""
        stored = self._state_dir / "host-keys" / f"{host.spec.name}.ed25519"
        private, host.disk_public = new_disk_key(stored)
        write_file(host.dir / "disk_host_key", private, self._account, 0o640)
        fresh_dir(host.home("disk"), self._account)
        key = installed_ssh_key or self._operator_key
        host.disk_authorized = check_public_key(key, f"{host.spec.name}: installed key")

    def _boot_files(self, host: HostState, mode: Mode, rescue_ssh_key: str | None) -> None:
        """What changes at a boot: sshd_config, identity, and for rescue a new key and HOME."""
        account = self._account
        if mode == "rescue":
            private, host.rescue_public = generate_ed25519()
            write_file(host.dir / "rescue_host_key", private, account, 0o640)
            write_file(
                host.dir / "authorized_keys.rescue", f"{rescue_ssh_key or ''}\n", account, 0o640
            )
            fresh_dir(host.home("rescue"), account)
        else:
            write_file(
                host.dir / "authorized_keys.disk", f"{host.disk_authorized}\n", account, 0o640
            )
        identity = self._rescue_hostname if mode == "rescue" else host.spec.identity
        write_file(host.dir / "bin" / "hostname", hostname_script(identity), account, 0o750)
        write_file(host.dir / "sshd_config", self._sshd_config(host, mode), account, 0o640)

    def _sshd_config(self, host: HostState, mode: Mode) -> str:
        spec = host.spec
        return SshdConfig(
            spec.name,
            mode,
            spec.address,
            spec.port,
            host.dir,
            self._account.name,
            self._account.shell,
            self._marker(host).decode(),
            forwarding=host is self._jump,
        ).text()

    def _launch(self, host: HostState) -> None:
        """Spawn sshd and wait until it listens (caller holds ``host.lock``)."""
        host.process = spawn_sshd(host, self._sshd, self._account, self._netns)
        try:
            wait_listening([host], _LISTEN_TIMEOUT)
        except BaseException:
            self._kill([host])
            host.mode = None
            raise

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
            if host.isolated:
                raise UsageError(
                    f"{name}: refusing connections behind a jump host is not supported"
                )
            process, host.process = host.process, None
            process.kill()  # the listener only: connection processes have their own sessions
            process.wait(KILL_TIMEOUT)
            listener = bind_listener(host.spec.address, host.spec.port)
            done = functools.partial(self._end_refusal, host)
            host.refuser = Refuser(listener, count, timeout, done, name)
            host.refuser.start()

    def _end_refusal(self, host: HostState, refuser: Refuser) -> None:
        """Bring sshd back, unless the host was powered off or stopped meanwhile."""
        with host.lock:
            if host.refuser is refuser:
                host.refuser = None
                self._launch(host)
