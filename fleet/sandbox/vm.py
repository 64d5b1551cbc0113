"""The sandbox's VM hosts: QEMU machines that look like OVH hybrid servers to fleet over SSH.

Each VM has

* two NVMe disks (``nvme0n1``, ``nvme1n1``): copy-on-write qcow2 overlays on the installed-system
  image (``scripts/vm-images.sh``), laid out as OVH's soft-RAID install: p1 ESP (511 MiB, label
  ``EFI_SYSPART``), p2 ``/boot`` (md2, RAID1), p3 ``/`` (md3, RAID1), p4 swap (``swap-nvme0n1p4``),
  p5 ``config-2`` (iso9660) on ``nvme0n1`` only; arrays named ``md2``/``md3`` (no host prefix);
* ``hdd_count`` HDDs (default 2, ``sda``/``sdb``) on the q35's AHCI controller: SATA, rotational
  (``rotation_rate=7200``, lsblk ``ROTA=1 TRAN=sata``), model ``HGST HUS726040AL``, a serial per VM
  and disk (:attr:`VmSpec.hdd_serials`), sparse qcow2 of ``hdd_size_mib`` (default 4 GiB), blank,
  or with ``hdd_stub=True`` OVH's leftover 511 MiB partition (GPT, ``primary``, ``boot`` flag);
* user-mode networking, the guest reachable only as ``address:port`` -> guest port 22, on
  loopback (``restrict=on``: the guest cannot reach any network);
* two boot modes, as the fake OVH API's boot id selects:

  - ``disk``: the installed Debian. QEMU boots, like a boot loader would, the newest kernel and
    initramfs found in the VM's own ``/boot`` (md2), read from its qcow2 at every power-on; the
    initramfs assembles md3 and mounts it as ``/``. Host key and authorised key (the operator's)
    are set at the first boot of an install and kept from then on; hostname ``spec.hostname``.
  - ``rescue``: OVH-style Debian rescue (hostname ``rescue12-customer-eu``), a RAM disk: a new
    SSH host key at every boot, only the ``rescueSshKey`` of that boot authorised (none given:
    nobody gets in). Its udev may auto-assemble the NVMe arrays (as md127...), as OVH's does.

Power, as :class:`fleet.sandbox.hosts.HostFleet`: :meth:`VmFleet.on_power` takes the fake API's
power events (``off`` when a reboot task reaches ``doing``, ``on`` in the new mode at ``done``)
and applies them on a worker thread per VM, so the API's ticker never waits for QEMU; a reboot is
a power cycle (QEMU quit, QEMU started again on the same disks), not a firmware reboot, which
would cost minutes under TCG. A reboot from inside the guest (``reboot``) exits QEMU
(``-no-reboot``); the VM is then started again in the mode the API's boot id selects *now*
(``boot_mode`` callback), as a server netbooting from OVH would. A guest ``poweroff`` leaves it
off. QEMU is driven through QMP (``quit``, ``system_powerdown``, ``query-status``).

Timing under TCG (measured on 2 cores, no usable KVM): one VM answers SSH about 70-80 s after
power-on on disk, 45-50 s in rescue; VMs booting at the same time share the cores, so budget
waits accordingly (:meth:`VmFleet.wait_ssh`). Writes that the guest has not synced when the
power is cut (an API hard reboot) can be lost, as on real hardware: ``sync`` before rebooting.

Use from tests and plans::

    images = ensure_images()                       # builds once (root, minutes), then cached
    vms = VmFleet([VmSpec("vm-01", "127.0.0.1", 22201)], state_dir=d, images=images,
                  operator_public_key=pub, sandbox_id="t1")
    vms.start()                                    # boots all in disk mode, waits for SSH
    vms.port("vm-01"), vms.address("vm-01"), vms.login_user   # ssh root@127.0.0.1 -p 22201
    vms.disk_host_key("vm-01")                     # (type, base64) of the installed system
    vms.power_on("vm-01", "rescue", rescue_ssh_key=pub)    # or via the fake API's reboot
    vms.wait_ssh("vm-01")
    vms.nvme_checksums("vm-01")                    # system-disk fingerprints (see below)
    vms.stop()                                     # no QEMU process, no overlay left

:meth:`VmFleet.nvme_checksums` reads the NVMe overlays from this machine's side: the GPT, every
non-md partition byte for byte (ESP, swap, config-2) and the identity of each md member
(array UUID, level, slot; not its event counters). Reading while the VM runs is allowed but only
regions the guest does not write are consistent: compare with the VM powered off, or trust only
what no running system writes (everything but the md data).

Files: ``<state_dir>/<name>/`` holds the overlays, the console log (``console.log``, the serial
port: kernel and boot messages) and the boot files; ``<state_dir>/host-keys/`` the installed
systems' host keys (kept across sandbox restarts); ``<state_dir>/vms.json`` the QEMU PIDs, for
:func:`stop_recorded` after a crash. QMP sockets live in a short temporary directory (a socket
path must stay under 108 bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fleet.errors import ConfigError, FleetError, UsageError
from fleet.sandbox.hosts import PowerEventLike, generate_ed25519
from fleet.sandbox.vm_images import (
    VmImages,
    disk_checksums,
    extract_boot_files,
    qemu_img_create,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

Mode = Literal["disk", "rescue"]

QEMU = "qemu-system-x86_64"
HDD_MODEL = "HGST HUS726040AL"
RESCUE_HOSTNAME = "rescue12-customer-eu"
RECORD_FILE = "vms.json"
LOGIN_USER = "root"
_MODE_ALIASES: dict[str, Mode] = {"disk": "disk", "harddisk": "disk", "rescue": "rescue"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_QUIT_TIMEOUT = 15.0
_QMP_TIMEOUT = 10.0
_KVM_PROBE_TIMEOUT = 20.0
_CONSOLE_TAIL = 1500
_SLOT_TIMEOUT = 900.0


# ---------------------------------------------------------------------------------------------
# specs


@dataclass(frozen=True)
class VmSpec:
    """One VM host. ``hostname``: the installed system's (default ``name``)."""

    name: str
    address: str
    port: int
    hostname: str | None = None
    hdd_count: int = 2
    hdd_size_mib: int = 4096
    hdd_stub: bool = False
    memory_mib: int = 1536

    @property
    def identity(self) -> str:
        return self.hostname or self.name

    @property
    def hdd_serials(self) -> tuple[str, ...]:
        """Serials of the HDDs (stable per VM name), as ``lsblk -o SERIAL`` shows them."""
        tag = hashlib.sha256(self.name.encode()).hexdigest()[:6].upper()
        return tuple(f"K7H{tag}{i}" for i in range(self.hdd_count))

    @property
    def nvme_serials(self) -> tuple[str, str]:
        tag = hashlib.sha256(self.name.encode()).hexdigest()[6:12].upper()
        return (f"S4EW{tag}0", f"S4EW{tag}1")


def _validate(specs: Sequence[VmSpec]) -> None:
    names: set[str] = set()
    ends: set[tuple[str, int]] = set()
    for spec in specs:
        if not _NAME.fullmatch(spec.name):
            raise UsageError(f"{spec.name!r}: not a usable VM name ([A-Za-z0-9._-])")
        if spec.hostname is not None and not _HOSTNAME.fullmatch(spec.hostname):
            raise UsageError(f"{spec.name}: not a hostname: {spec.hostname!r}")
        if not spec.address.startswith("127.") or not 1 <= spec.port <= 65535:
            raise UsageError(f"{spec.name}: {spec.address}:{spec.port} is not a loopback endpoint")
        if not 0 <= spec.hdd_count <= 6 or spec.hdd_size_mib < 64 or spec.memory_mib < 512:
            raise UsageError(f"{spec.name}: hdd_count 0..6, hdd_size_mib >= 64, memory >= 512")
        if spec.name in names or (spec.address, spec.port) in ends:
            raise UsageError(f"{spec.name}: duplicate name or endpoint")
        names.add(spec.name)
        ends.add((spec.address, spec.port))


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` now (best effort: another process may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------
# QMP


def _qmp_lines(conn: socket.socket) -> Any:
    """Yield the JSON messages of a QMP connection (one per line)."""
    buffer = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def qmp_connect(path: Path, timeout: float = _QMP_TIMEOUT) -> socket.socket:
    """A QMP connection past the greeting and capability negotiation."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
        messages = _qmp_lines(conn)
        next(messages)  # greeting
        conn.sendall(b'{"execute": "qmp_capabilities"}\n')
        for message in messages:
            if "return" in message or "error" in message:
                break
    except BaseException:
        conn.close()
        raise
    return conn


def qmp_execute(path: Path, command: str, timeout: float = _QMP_TIMEOUT) -> Any:
    """Run one QMP command on the socket at ``path``; its ``return`` value."""
    try:
        with qmp_connect(path, timeout) as conn:
            conn.sendall(json.dumps({"execute": command}).encode() + b"\n")
            for message in _qmp_lines(conn):
                if "error" in message:
                    raise FleetError(f"QMP {command}: {message['error']}")
                if "return" in message:
                    return message["return"]
    except (OSError, ValueError, StopIteration) as exc:
        raise FleetError(f"QMP {command} on {path}: {exc}") from exc
    return None  # the connection closed first: QEMU is exiting (as after "quit")


# ---------------------------------------------------------------------------------------------
# the accelerator


def _kvm_boots(images: VmImages, timeout: float) -> bool:
    """Does a KVM guest get as far as its kernel's first panic (no root: it reboots, and
    ``-no-reboot`` ends QEMU)? Here KVM guests were seen hanging before printing anything."""
    command = [QEMU, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256"]
    command += ["-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio"]
    command += ["-kernel", str(images.rescue_kernel), "-append", "console=ttyS0 panic=-1"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in done.stdout or b"Linux version" in done.stdout


def choose_accel(images: VmImages, *, timeout: float = _KVM_PROBE_TIMEOUT) -> str:
    """``kvm`` when a short KVM boot works, else ``tcg``; ``$FLEET_VM_ACCEL`` overrides. The
    probe's answer is kept next to the images for the rest of this machine's uptime."""
    forced = os.environ.get("FLEET_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    memo = images.dir.parent / f".accel-{boot_id}"
    with contextlib.suppress(OSError):
        answer = memo.read_text().strip()
        if answer in ("kvm", "tcg"):
            return answer
    answer = "kvm" if _kvm_boots(images, timeout) else "tcg"
    with contextlib.suppress(OSError):
        memo.write_text(answer + "\n")
    log.info("VM accelerator: %s", answer)
    return answer


# ---------------------------------------------------------------------------------------------
# the QEMU command line


@dataclass(frozen=True)
class BootSpec:
    """What one power-on boots: kernel, initramfs, command line, fw_cfg items (name -> file)."""

    mode: Mode
    kernel: Path
    initrd: Path
    cmdline: str
    fw_cfg: dict[str, Path]


def qemu_command(
    spec: VmSpec,
    boot: BootSpec,
    *,
    accel: str,
    marker: str,
    nvmes: Sequence[Path],
    hdds: Sequence[Path],
    qmp: Sequence[Path],
    console: Path,
) -> list[str]:
    """The QEMU command line of one power-on (pure: no file is touched)."""
    cpu = "host" if accel == "kvm" else "max"
    cmd = [QEMU, "-name", marker, "-machine", "q35", "-accel", accel, "-cpu", cpu]
    cmd += ["-smp", "1", "-m", str(spec.memory_mib), "-nodefaults", "-display", "none"]
    cmd += ["-no-reboot", "-chardev", f"file,id=console,path={console},append=on"]
    cmd += ["-serial", "chardev:console", "-kernel", str(boot.kernel)]
    cmd += ["-initrd", str(boot.initrd), "-append", boot.cmdline]
    for path in qmp:
        cmd += ["-qmp", f"unix:{path},server=on,wait=off"]
    for name, path in sorted(boot.fw_cfg.items()):
        cmd += ["-fw_cfg", f"name=opt/fleet/{name},file={path}"]
    for i, (path, serial) in enumerate(zip(nvmes, spec.nvme_serials, strict=True)):
        cmd += ["-drive", f"if=none,id=nvme{i},file={path},format=qcow2,discard=unmap"]
        cmd += ["-device", f"nvme,drive=nvme{i},serial={serial}"]
    for i, (path, serial) in enumerate(zip(hdds, spec.hdd_serials, strict=True)):
        cmd += ["-drive", f"if=none,id=hdd{i},file={path},format=qcow2"]
        cmd += ["-device", f"ide-hd,bus=ide.{i},drive=hdd{i},model={HDD_MODEL},serial={serial}"]
        cmd[-1] += ",rotation_rate=7200"
    forward = f"hostfwd=tcp:{spec.address}:{spec.port}-:22"
    cmd += ["-netdev", f"user,id=net0,restrict=on,{forward}"]
    cmd += ["-device", "virtio-net-pci,netdev=net0"]
    return cmd


# ---------------------------------------------------------------------------------------------
# one VM


@dataclass
class _Vm:
    """Mutable state of one VM. ``lock`` serialises its power operations; ``worker`` runs the
    fake API's power events and guest reboots in order, off the API's ticker thread."""

    spec: VmSpec
    dir: Path
    sockets: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    worker: ThreadPoolExecutor | None = None
    mode: Mode | None = None
    process: subprocess.Popen[bytes] | None = None
    expected_exit: bool = False
    disk_public: str = ""
    disk_authorized: str = ""
    rescue_key: str | None = None
    boots: int = 0
    queued: int = 0
    last_error: str | None = None

    @property
    def nvmes(self) -> tuple[Path, Path]:
        return (self.dir / "nvme0.qcow2", self.dir / "nvme1.qcow2")

    @property
    def hdds(self) -> tuple[Path, ...]:
        return tuple(self.dir / f"hdd{i}.qcow2" for i in range(self.spec.hdd_count))

    @property
    def qmp(self) -> Path:
        return self.sockets / f"{self.spec.name}.qmp"

    @property
    def events(self) -> Path:
        return self.sockets / f"{self.spec.name}.events"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"


def _console_tail(vm: _Vm) -> str:
    try:
        with open(vm.console, "rb") as console:
            console.seek(0, os.SEEK_END)
            console.seek(max(0, console.tell() - _CONSOLE_TAIL))
            return console.read().decode(errors="replace")
    except OSError:
        return ""


def _check_public_key(line: str, what: str) -> str:
    fields = line.split()
    if len(fields) < 2 or "\n" in line.strip() or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise UsageError(f"{what}: not an OpenSSH public key line: {line[:60]!r}")
    return line.strip()


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


# ---------------------------------------------------------------------------------------------
# the fleet


class VmFleet:
    """The sandbox's VM hosts: start, power, stop. Thread-safe per VM.

    ``start`` and ``stop`` must not run concurrently with other calls. ``boot_mode(name)``
    returns the (mode, rescue key) a reboot lands in now (the fake API's boot id), used when
    the guest reboots itself; without it the VM comes back in its current mode.
    """

    def __init__(
        self,
        specs: Sequence[VmSpec],
        *,
        state_dir: Path,
        images: VmImages,
        operator_public_key: str,
        sandbox_id: str,
        boot_mode: Callable[[str], tuple[str | None, str | None]] | None = None,
        accel: str | None = None,
        boot_concurrency: int | None = None,
    ) -> None:
        _validate(specs)
        if not _NAME.fullmatch(sandbox_id):
            raise UsageError(f"sandbox id {sandbox_id!r}: use [A-Za-z0-9._-] only")
        for spec in specs:
            if spec.hdd_stub and spec.hdd_size_mib != images.hdd_stub_mib:
                raise UsageError(
                    f"{spec.name}: hdd_stub needs hdd_size_mib={images.hdd_stub_mib} "
                    "(the size of the stub image)"
                )
        self._operator_key = _check_public_key(operator_public_key, "operator public key")
        self._state_dir = Path(state_dir).absolute()
        self._images = images
        self._sandbox_id = sandbox_id
        self._boot_mode = boot_mode
        self._accel = accel
        self._sockets = Path(tempfile.mkdtemp(prefix="fleet-vm-"))
        self._vms = {s.name: _Vm(s, self._state_dir / s.name, self._sockets) for s in specs}
        self._started = False
        self._record_lock = threading.Lock()
        # Emulated boots share the cores: more at once than cores makes every one of them slow
        # enough to hit the guests' own timeouts. A boot holds a slot until SSH answers.
        slots = boot_concurrency or os.cpu_count() or 1
        self._boot_slots = threading.BoundedSemaphore(max(1, slots))

    # -- queries ---------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[VmSpec, ...]:
        return tuple(vm.spec for vm in self._vms.values())

    @property
    def login_user(self) -> str:
        """The user fleet logs in as, on the installed system and in rescue alike."""
        return LOGIN_USER

    @property
    def accel(self) -> str | None:
        """``kvm`` or ``tcg`` once started."""
        return self._accel

    def address(self, name: str) -> str:
        return self._vm(name).spec.address

    def port(self, name: str) -> int:
        return self._vm(name).spec.port

    def mode(self, name: str) -> Mode | None:
        """The mode the VM was last powered on in, None when off."""
        return self._vm(name).mode

    def boots(self, name: str) -> int:
        """How many times QEMU was started for this VM."""
        return self._vm(name).boots

    def disk_host_key(self, name: str) -> tuple[str, str]:
        """(type, base64) of the installed system's host key."""
        key_type, blob = self._vm(name).disk_public.split()[:2]
        return key_type, blob

    def console_log(self, name: str) -> Path:
        """The VM's serial console (kernel and boot messages), appended across boots."""
        return self._vm(name).console

    def last_error(self, name: str) -> str | None:
        """The last failure of a power event applied in the background, if any."""
        return self._vm(name).last_error

    def pids(self) -> dict[str, int]:
        """QEMU PID of every running VM."""
        return {n: vm.process.pid for n, vm in self._vms.items() if vm.process is not None}

    def known_hosts_lines(self) -> list[str]:
        """The installed systems' host keys in known_hosts format."""
        lines = []
        for vm in self._vms.values():
            key_type, blob = vm.disk_public.split()[:2]
            lines.append(f"[{vm.spec.address}]:{vm.spec.port} {key_type} {blob}")
        return lines

    def qmp(self, name: str, command: str) -> Any:
        """Run a QMP command (e.g. ``query-status``) on the VM's QEMU."""
        return qmp_execute(self._vm(name).qmp, command)

    def nvme_checksums(self, name: str) -> dict[str, str]:
        """Fingerprints of both NVMe disks: see the module docstring."""
        vm = self._vm(name)
        sums: dict[str, str] = {}
        for i, path in enumerate(vm.nvmes):
            sums.update(disk_checksums(path, f"nvme{i}n1"))
        return sums

    def _vm(self, name: str) -> _Vm:
        try:
            return self._vms[name]
        except KeyError:
            raise UsageError(f"{name}: no such VM host") from None

    def _require_started(self) -> None:
        if not self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: VM hosts are not started")

    def _marker(self, vm: _Vm) -> str:
        return f"fleet-vm:{self._sandbox_id}:{vm.spec.name}"

    # -- start and stop --------------------------------------------------------------------

    def start(
        self, initial_mode: Mode = "disk", *, wait: bool = True, timeout: float = 600.0
    ) -> None:
        """Make every VM's disks and boot them all; with ``wait``, return once all answer SSH."""
        if initial_mode not in ("disk", "rescue"):
            raise UsageError(f"unknown boot mode {initial_mode!r}")
        if self._started:
            raise UsageError(f"sandbox {self._sandbox_id}: VM hosts already started")
        began = time.monotonic()
        stop_recorded(self._state_dir)  # a previous run of this sandbox that crashed
        if self._accel is None:
            self._accel = choose_accel(self._images)
        self._started = True
        try:
            for vm in self._vms.values():
                self._prepare(vm)
                vm.worker = ThreadPoolExecutor(1, thread_name_prefix=f"vm-{vm.spec.name}")
                self.power_on(vm.spec.name, initial_mode)
            if wait:
                self.wait_ssh_all(timeout)
        except BaseException:
            self.stop()
            raise
        log.info(
            "%d VM hosts up in %.0f s (%s)", len(self._vms), time.monotonic() - began, self._accel
        )

    def _prepare(self, vm: _Vm) -> None:
        """The VM's directory, fresh disks (overlays on the images), installed-system keys."""
        if vm.dir.exists():
            shutil.rmtree(vm.dir)
        vm.dir.mkdir(parents=True, mode=0o700)
        self._new_install_disks(vm)
        for i, path in enumerate(vm.hdds):
            backing = self._images.hdd_stub if vm.spec.hdd_stub else None
            qemu_img_create(path, vm.spec.hdd_size_mib, backing)
            log.debug("%s: hdd%d %s", vm.spec.name, i, path)
        keys = self._state_dir / "host-keys"
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        stored = keys / f"{vm.spec.name}.ed25519"
        if stored.exists():
            public = (
                subprocess.run(
                    ["ssh-keygen", "-y", "-f", str(stored)], capture_output=True, check=False
                )
                .stdout.decode()
                .strip()
            )
            if not public:
                raise ConfigError(f"{stored}: unreadable host key", hint="delete it")
            vm.disk_public = public
        else:
            private, vm.disk_public = generate_ed25519()
            _write_private(stored, private)
        vm.disk_authorized = self._operator_key

    def _new_install_disks(self, vm: _Vm) -> None:
        for path, base in zip(vm.nvmes, self._images.nvme_bases, strict=True):
            path.unlink(missing_ok=True)
            qemu_img_create(path, self._images.nvme_mib, base)

    def stop(self) -> None:
        """Quit every QEMU (SIGKILL by PID if it does not), delete the overlays. Idempotent."""
        self._started = False  # from now on power calls are refused
        for vm in self._vms.values():
            if vm.worker is not None:
                vm.worker.shutdown(wait=True, cancel_futures=True)
                vm.worker = None
        for vm in self._vms.values():
            with vm.lock:
                self._halt(vm)
            if vm.dir.exists():
                shutil.rmtree(vm.dir)
        stop_recorded(self._state_dir)
        shutil.rmtree(self._sockets, ignore_errors=True)

    # -- power -----------------------------------------------------------------------------

    def power_on(
        self,
        name: str,
        mode: Mode,
        rescue_ssh_key: str | None = None,
        reinstalled: bool = False,
        installed_ssh_key: str | None = None,
    ) -> None:
        """Boot ``name`` in ``mode`` (a running VM is powered off first). Returns once QEMU
        runs, not when SSH answers (:meth:`wait_ssh`). ``reinstalled``: fresh installed-system
        disks from the image, a new host key, ``installed_ssh_key`` (default: the operator's)."""
        if mode not in ("disk", "rescue"):
            raise UsageError(f"{name}: unknown boot mode {mode!r}")
        if rescue_ssh_key:
            rescue_ssh_key = _check_public_key(rescue_ssh_key, f"{name}: rescue key")
        vm = self._vm(name)
        with vm.lock:
            self._require_started()
            self._halt(vm)
            if reinstalled:
                self._reinstall(vm, installed_ssh_key)
            boot = self._boot_spec(vm, mode, rescue_ssh_key)
            self._take_boot_slot(vm)
            try:
                self._spawn(vm, boot)
            except BaseException:
                self._boot_slots.release()
                raise
            threading.Thread(
                target=self._hold_boot_slot, args=(vm, vm.process), daemon=True
            ).start()

    def _take_boot_slot(self, vm: _Vm) -> None:
        """Wait for a free boot slot (bounded; given up when the fleet stops)."""
        deadline = time.monotonic() + _SLOT_TIMEOUT
        while not self._boot_slots.acquire(timeout=1.0):
            if not self._started:
                raise UsageError(f"{vm.spec.name}: VM hosts stopped while waiting to boot")
            if time.monotonic() > deadline:
                raise FleetError(f"{vm.spec.name}: no boot slot free for {_SLOT_TIMEOUT:.0f} s")

    def _hold_boot_slot(self, vm: _Vm, process: subprocess.Popen[bytes] | None) -> None:
        """Free the boot slot once SSH answers, QEMU exits, or after a bounded time."""
        deadline = time.monotonic() + _SLOT_TIMEOUT
        try:
            while process is not None and process.poll() is None and self._started:
                if time.monotonic() > deadline or banner(vm.spec.address, vm.spec.port):
                    break
                time.sleep(1.0)
        finally:
            self._boot_slots.release()

    def power_off(self, name: str) -> None:
        """Cut the power: QEMU quits at once (the guest does not shut down)."""
        vm = self._vm(name)
        with vm.lock:
            self._require_started()
            self._halt(vm)

    def shutdown(self, name: str, timeout: float = 120.0) -> None:
        """Press the power button (ACPI): the guest shuts down cleanly, then QEMU quits."""
        vm = self._vm(name)
        with vm.lock:
            self._require_started()
            process = vm.process
            if process is None:
                return
            vm.expected_exit = True
            qmp_execute(vm.qmp, "system_powerdown")
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s: no clean shutdown within %.0f s; cutting power", name, timeout)
            self._halt(vm)

    def on_power(self, name: str, event: PowerEventLike) -> None:
        """Queue a power event of the fake OVH API (``kind`` "off" or "on") for this VM's
        worker; returns at once (a VM boot takes longer than the API's ticker may wait)."""
        vm = self._vm(name)
        mode = _MODE_ALIASES.get(event.mode)
        if event.kind not in ("off", "on") or mode is None:
            raise UsageError(f"{name}: unknown power event {event.kind!r} / {event.mode!r}")
        installed = getattr(event, "installed_ssh_key", None)
        action: Callable[[], None]
        if event.kind == "off":
            action = lambda: self.power_off(name)  # noqa: E731
        else:
            action = lambda: self.power_on(  # noqa: E731
                name,
                mode,
                rescue_ssh_key=event.rescue_ssh_key,
                reinstalled=event.reinstalled,
                installed_ssh_key=installed if isinstance(installed, str) else None,
            )
        self._submit(vm, action, f"power {event.kind} {event.mode}")

    def _submit(self, vm: _Vm, action: Callable[[], None], what: str) -> None:
        worker = vm.worker
        if worker is None:
            return  # stopped
        with vm.lock:
            vm.queued += 1
        try:
            worker.submit(self._run_logged, vm, action, what)
        except RuntimeError:
            with vm.lock:
                vm.queued -= 1  # shut down meanwhile

    def _run_logged(self, vm: _Vm, action: Callable[[], None], what: str) -> None:
        try:
            action()
            vm.last_error = None
        except Exception as exc:
            vm.last_error = f"{what}: {exc}"
            log.exception("%s: %s failed", vm.spec.name, what)
        finally:
            with vm.lock:
                vm.queued -= 1

    def _reinstall(self, vm: _Vm, installed_ssh_key: str | None) -> None:
        """A fresh installed system: disks from the image, new host key, the install's key."""
        self._new_install_disks(vm)
        private, vm.disk_public = generate_ed25519()
        _write_private(self._state_dir / "host-keys" / f"{vm.spec.name}.ed25519", private)
        key = installed_ssh_key or self._operator_key
        vm.disk_authorized = _check_public_key(key, f"{vm.spec.name}: installed key")

    def _boot_spec(self, vm: _Vm, mode: Mode, rescue_key: str | None) -> BootSpec:
        """Kernel, initramfs and settings of this boot (the caller holds ``vm.lock``)."""
        if mode == "rescue":
            items = {}
            if rescue_key:
                (vm.dir / "rescue_key").write_text(rescue_key + "\n")
                items["rescue_key"] = vm.dir / "rescue_key"
            vm.rescue_key = rescue_key
            images = self._images
            cmdline = "console=ttyS0 panic=-1"
            return BootSpec(mode, images.rescue_kernel, images.rescue_initrd, cmdline, items)
        boot_dir = vm.dir / "boot"
        boot_dir.mkdir(exist_ok=True)
        kernel, initrd = self._boot_files(vm, boot_dir)
        stored = self._state_dir / "host-keys" / f"{vm.spec.name}.ed25519"
        (vm.dir / "authorized_keys").write_text(vm.disk_authorized + "\n")
        (vm.dir / "hostname").write_text(vm.spec.identity + "\n")
        items = {
            "host_key": stored,
            "authorized_keys": vm.dir / "authorized_keys",
            "hostname": vm.dir / "hostname",
        }
        cmdline = self._images.cmdline + " panic=-1"
        return BootSpec(mode, kernel, initrd, cmdline, items)

    def _boot_files(self, vm: _Vm, boot_dir: Path) -> tuple[Path, Path]:
        """The installed kernel and initramfs from /boot, as firmware would try each disk."""
        errors = []
        for path in vm.nvmes:
            try:
                return extract_boot_files(path, boot_dir)
            except FleetError as exc:
                errors.append(str(exc))
        raise FleetError(f"{vm.spec.name}: no bootable installed system: {'; '.join(errors)}")

    # -- QEMU processes --------------------------------------------------------------------

    def _spawn(self, vm: _Vm, boot: BootSpec) -> None:
        """Start QEMU for ``boot`` and a thread that watches it (caller holds ``vm.lock``)."""
        assert self._accel is not None
        for path in (vm.qmp, vm.events):
            path.unlink(missing_ok=True)
        command = qemu_command(
            vm.spec,
            boot,
            accel=self._accel,
            marker=self._marker(vm),
            nvmes=vm.nvmes,
            hdds=vm.hdds,
            qmp=(vm.qmp, vm.events),
            console=vm.console,
        )
        with open(vm.console, "ab") as console:
            console.write(f"\n==== fleet: power on, {boot.mode} ====\n".encode())
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(vm.dir / "qemu.log", "ab"),  # noqa: SIM115 - the child owns it
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigError(f"{vm.spec.name}: cannot run {QEMU}: {exc}") from exc
        vm.process, vm.mode, vm.expected_exit = process, boot.mode, False
        vm.boots += 1
        self._record()
        watcher = threading.Thread(
            target=self._watch, args=(vm, process), name=f"qmp-{vm.spec.name}", daemon=True
        )
        watcher.start()

    def _halt(self, vm: _Vm) -> None:
        """Power off: QMP ``quit`` (QEMU flushes its disks and exits), SIGKILL if it hangs."""
        process, vm.process = vm.process, None
        vm.mode = None
        if process is None:
            return
        vm.expected_exit = True
        if process.poll() is None:
            with contextlib.suppress(FleetError):
                qmp_execute(vm.qmp, "quit")
            try:
                process.wait(_QUIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("%s: QEMU %d ignored quit; killing it", vm.spec.name, process.pid)
                process.kill()
                process.wait(_QUIT_TIMEOUT)
        self._record()

    def _watch(self, vm: _Vm, process: subprocess.Popen[bytes]) -> None:
        """Follow QEMU's events until it exits; a guest reboot powers the VM on again."""
        reason = None
        try:
            reason = self._shutdown_reason(vm, process)
        except Exception:
            log.exception("%s: watching QEMU %d failed", vm.spec.name, process.pid)
        process.wait()
        with vm.lock:  # the reboot is queued under the lock: wait_ssh never sees a gap
            if vm.process is not process or vm.expected_exit:
                return  # we stopped it, or it was replaced
            vm.process, vm.mode = None, None
            if reason == "guest-reset":
                log.info("%s: the guest rebooted; booting it again", vm.spec.name)
                self._submit(vm, lambda: self._reboot_after_guest(vm), "guest reboot")
                return
        if reason == "guest-shutdown":
            log.info("%s: the guest powered off", vm.spec.name)
        else:
            vm.last_error = f"QEMU exited ({process.returncode}, {reason}): {_console_tail(vm)}"
            log.error("%s: %s", vm.spec.name, vm.last_error)

    def _shutdown_reason(self, vm: _Vm, process: subprocess.Popen[bytes]) -> str | None:
        """The ``reason`` of QEMU's last SHUTDOWN event (``guest-reset``: the guest rebooted)."""
        conn = None
        for _ in range(200):  # QEMU makes its socket right after it starts
            if process.poll() is not None:
                return None
            try:
                conn = qmp_connect(vm.events, timeout=_QMP_TIMEOUT)
                break
            except OSError:
                time.sleep(0.05)
        if conn is None:
            return None
        reason = None
        with conn:
            conn.settimeout(None)
            with contextlib.suppress(OSError, ValueError):
                for message in _qmp_lines(conn):
                    if message.get("event") == "SHUTDOWN":
                        reason = message.get("data", {}).get("reason")
        return reason if isinstance(reason, str) else None

    def _reboot_after_guest(self, vm: _Vm) -> None:
        """After a guest reboot: boot what the API's boot id selects now (or the same mode)."""
        with vm.lock:
            if not self._started or vm.process is not None:
                return  # stopped, or powered on by an API event meanwhile
            mode: str | None = "disk"
            key = vm.rescue_key
            if self._boot_mode is not None:
                mode, key = self._boot_mode(vm.spec.name)
            if mode not in ("disk", "rescue"):
                log.info("%s: rebooted to %s: stays off", vm.spec.name, mode)
                return
            self.power_on(vm.spec.name, "rescue" if mode == "rescue" else "disk", key)

    def _record(self) -> None:
        """What :func:`stop_recorded` needs to find our QEMU processes after a crash."""
        with self._record_lock:
            record = {
                "sandbox_id": self._sandbox_id,
                "qemu": {
                    self._marker(vm): vm.process.pid
                    for vm in self._vms.values()
                    if vm.process is not None
                },
                "dirs": [str(vm.dir) for vm in self._vms.values()],
            }
            self._state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._state_dir / f".{RECORD_FILE}.new"
            tmp.write_text(json.dumps(record, indent=1) + "\n")
            tmp.replace(self._state_dir / RECORD_FILE)

    # -- waiting for SSH -------------------------------------------------------------------

    def wait_ssh(self, name: str, timeout: float = 600.0) -> float:
        """Wait until the VM's sshd sends its banner; the seconds waited. Raises with the
        console's last lines when QEMU dies or the time runs out."""
        vm = self._vm(name)
        began = time.monotonic()
        while True:
            if banner(vm.spec.address, vm.spec.port):
                return time.monotonic() - began
            process = vm.process  # no lock: a power-on may hold it while waiting for a slot
            if (process is None or process.poll() is not None) and not self._pending(vm):
                raise FleetError(
                    f"{name}: powered off while waiting for SSH "
                    f"({vm.last_error or 'no error'}): {_console_tail(vm)[-600:]}"
                )
            if time.monotonic() - began > timeout:
                raise FleetError(
                    f"{name}: no SSH on {vm.spec.address}:{vm.spec.port} after {timeout:.0f} s; "
                    f"console: {_console_tail(vm)[-600:]}"
                )
            time.sleep(1.0)

    def _pending(self, vm: _Vm) -> bool:
        """Has the VM's worker still work queued (a power-on on its way)?"""
        return vm.queued > 0

    def wait_ssh_all(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        for name in self._vms:
            self.wait_ssh(name, max(1.0, deadline - time.monotonic()))


def banner(address: str, port: int, timeout: float = 5.0) -> bool:
    """Does an SSH server answer on address:port (its ``SSH-`` banner)? QEMU accepts the TCP
    connection itself and closes it while the guest's sshd is not up yet."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _qemu_pid_of(pid: int, marker: str) -> bool:
    """Is ``pid`` a QEMU of ours (its command line carries our ``-name`` marker)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return marker.encode() in cmdline.read().split(b"\0")
    except OSError:
        return False


def stop_recorded(state_dir: Path) -> int:
    """Kill the QEMU processes recorded in ``state_dir`` (only those whose command line still
    carries our marker: a PID reused by another process is left alone) and delete the VMs'
    directories (overlays). The cleanup after a process that ran a :class:`VmFleet` died.
    Returns how many processes were killed."""
    path = Path(state_dir) / RECORD_FILE
    if not path.exists():
        return 0
    try:
        record = json.loads(path.read_text())
        qemus = {str(m): int(p) for m, p in record["qemu"].items()}
        dirs = [Path(d) for d in record["dirs"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: unreadable VM record") from exc
    killed = 0
    for marker, pid in qemus.items():
        if _qemu_pid_of(pid, marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
            _wait_gone(pid)
    for directory in dirs:
        if directory.parent == Path(state_dir).absolute() and directory.exists():
            shutil.rmtree(directory)
    path.unlink()
    return killed


def _wait_gone(pid: int, timeout: float = _QUIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
    raise FleetError(f"QEMU {pid} survived SIGKILL")
