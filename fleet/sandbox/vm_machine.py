"""One VM host's machine: its files (overlays, keys, console), what each power-on boots, and
the QEMU process of the current power-on. :class:`fleet.sandbox.vm.VmFleet` drives them.

Files: ``<state_dir>/<name>/`` holds the overlays, the console log (``console.log``, the serial
port: kernel and boot messages) and the boot files; ``<state_dir>/host-keys/`` the installed
systems' host keys (kept across sandbox restarts); ``<state_dir>/vms.json`` the QEMU PIDs, for
:func:`stop_recorded` after a crash. QMP sockets live in a short temporary directory (a socket
path must stay under 108 bytes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import ConfigError, FleetError, UsageError
from fleet.sandbox.hosts import generate_ed25519
from fleet.sandbox.qemu import QMP_TIMEOUT, QUIT_TIMEOUT, qmp_connect, qmp_execute, qmp_lines
from fleet.sandbox.vm_images import (
    VmImages,
    disk_checksums,
    extract_boot_files,
    hash_image,
    qemu_img_create,
)
from fleet.sandbox.vm_spec import QEMU, BootSpec, Mode, VmSpec, qemu_command

log = logging.getLogger(__name__)

_CONSOLE_TAIL = 1500


def check_public_key(line: str, what: str) -> str:
    fields = line.split()
    if len(fields) < 2 or "\n" in line.strip() or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise UsageError(f"{what}: not an OpenSSH public key line: {line[:60]!r}")
    return line.strip()


def write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@dataclass
class VmMachine:
    """Mutable state of one VM. ``lock`` serialises its power operations; ``worker`` runs the
    fake API's power events and guest reboots in order, off the API's ticker thread."""

    spec: VmSpec
    dir: Path
    sockets: Path
    images: VmImages
    keys: Path  # the installed systems' host keys, kept across sandbox restarts
    marker: str  # QEMU's -name: how our processes are found again by PID
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
    def stick(self) -> Path | None:
        return self.dir / "usb-stick.qcow2" if self.spec.usb_stick_mib else None

    @property
    def vmedia(self) -> Path | None:
        return self.dir / "virtual-media.qcow2" if self.spec.virtual_media_mib else None

    @property
    def qmp(self) -> Path:
        return self.sockets / f"{self.spec.name}.qmp"

    @property
    def events(self) -> Path:
        return self.sockets / f"{self.spec.name}.events"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def host_key_file(self) -> Path:
        return self.keys / f"{self.spec.name}.ed25519"

    def console_tail(self) -> str:
        try:
            with open(self.console, "rb") as console:
                console.seek(0, os.SEEK_END)
                console.seek(max(0, console.tell() - _CONSOLE_TAIL))
                return console.read().decode(errors="replace")
        except OSError:
            return ""

    def system_checksums(self) -> dict[str, str]:
        """Fingerprints of both system disks, read from this machine's side: the GPT, every
        non-md partition byte for byte (ESP, swap, config-2) and the identity of each md member
        (array UUID, level, slot; not its event counters). Compare with the VM powered off, or
        trust only what no running system writes (everything but the md data)."""
        sums: dict[str, str] = {}
        for i, path in enumerate(self.nvmes):
            sums.update(disk_checksums(path, f"nvme{i}n1"))
        return sums

    def usb_checksums(self) -> dict[str, str]:
        """SHA-256 of the USB stick's and the virtual-media disk's whole contents."""
        out = {}
        for key, path, size in (("usb-stick", self.stick, self.spec.usb_stick_mib),
                                ("virtual-media", self.vmedia, self.spec.virtual_media_mib)):  # fmt: skip
            if path is not None:
                out[key] = hash_image(path, size * 1024 * 1024)
        return out

    # -- disks and keys --------------------------------------------------------------------

    def prepare(self, operator_key: str) -> None:
        """The VM's directory, fresh disks (overlays on the images), installed-system keys."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, mode=0o700)
        self.new_install_disks()
        for i, (path, size) in enumerate(zip(self.hdds, self.spec.sizes_mib, strict=True)):
            backing = self.images.hdd_stub if self.spec.hdd_stub else None
            qemu_img_create(path, size, backing)
            log.debug("%s: hdd%d %s", self.spec.name, i, path)
        for extra, size in ((self.stick, self.spec.usb_stick_mib),
                            (self.vmedia, self.spec.virtual_media_mib)):  # fmt: skip
            if extra is not None:
                qemu_img_create(extra, size)
        self.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        stored = self.host_key_file
        if stored.exists():
            found = subprocess.run(
                ["ssh-keygen", "-y", "-f", str(stored)], capture_output=True, check=False
            )
            public = found.stdout.decode().strip()
            if not public:
                raise ConfigError(f"{stored}: unreadable host key", hint="delete it")
            self.disk_public = public
        else:
            private, self.disk_public = generate_ed25519()
            write_private(stored, private)
        self.disk_authorized = operator_key

    def new_install_disks(self) -> None:
        for path, base in zip(self.nvmes, self.images.nvme_bases, strict=True):
            path.unlink(missing_ok=True)
            qemu_img_create(path, self.images.nvme_mib, base)

    def reinstall(self, installed_ssh_key: str) -> None:
        """A fresh installed system: disks from the image, new host key, the install's key."""
        self.new_install_disks()
        private, self.disk_public = generate_ed25519()
        write_private(self.host_key_file, private)
        self.disk_authorized = check_public_key(
            installed_ssh_key, f"{self.spec.name}: installed key"
        )

    # -- one power-on ----------------------------------------------------------------------

    def boot_spec(self, mode: Mode, rescue_key: str | None) -> BootSpec:
        """Kernel, initramfs and settings of this boot (the caller holds ``lock``)."""
        if mode == "rescue":
            items = {}
            if rescue_key:
                (self.dir / "rescue_key").write_text(rescue_key + "\n")
                items["rescue_key"] = self.dir / "rescue_key"
            self.rescue_key = rescue_key
            cmdline = "console=ttyS0 panic=-1"
            return BootSpec(
                mode, self.images.rescue_kernel, self.images.rescue_initrd, cmdline, items
            )
        boot_dir = self.dir / "boot"
        boot_dir.mkdir(exist_ok=True)
        kernel, initrd = self._boot_files(boot_dir)
        (self.dir / "authorized_keys").write_text(self.disk_authorized + "\n")
        (self.dir / "hostname").write_text(self.spec.identity + "\n")
        items = {
            "host_key": self.host_key_file,
            "authorized_keys": self.dir / "authorized_keys",
            "hostname": self.dir / "hostname",
        }
        return BootSpec(mode, kernel, initrd, self.images.cmdline + " panic=-1", items)

    def _boot_files(self, boot_dir: Path) -> tuple[Path, Path]:
        """The installed kernel and initramfs from /boot, as firmware would try each disk."""
        errors = []
        for path in self.nvmes:
            try:
                return extract_boot_files(path, boot_dir)
            except FleetError as exc:
                errors.append(str(exc))
        raise FleetError(f"{self.spec.name}: no bootable installed system: {'; '.join(errors)}")

    def launch(self, boot: BootSpec, accel: str) -> subprocess.Popen[bytes]:
        """Start QEMU for ``boot`` (the caller holds ``lock``)."""
        for path in (self.qmp, self.events):
            path.unlink(missing_ok=True)
        command = qemu_command(
            self.spec, boot, accel=accel, marker=self.marker, nvmes=self.nvmes, hdds=self.hdds,
            qmp=(self.qmp, self.events), console=self.console, stick=self.stick,
            vmedia=self.vmedia,
        )  # fmt: skip
        with open(self.console, "ab") as console:
            console.write(f"\n==== fleet: power on, {boot.mode} ====\n".encode())
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(self.dir / "qemu.log", "ab"),  # noqa: SIM115 - the child owns it
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigError(f"{self.spec.name}: cannot run {QEMU}: {exc}") from exc
        self.process, self.mode, self.expected_exit = process, boot.mode, False
        self.boots += 1
        return process

    def halt(self) -> None:
        """Power off: QMP ``quit`` (QEMU flushes its disks and exits), SIGKILL if it hangs."""
        process, self.process = self.process, None
        self.mode = None
        if process is None:
            return
        self.expected_exit = True
        if process.poll() is None:
            with contextlib.suppress(FleetError):
                qmp_execute(self.qmp, "quit")
            try:
                process.wait(QUIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("%s: QEMU %d ignored quit; killing it", self.spec.name, process.pid)
                process.kill()
                process.wait(QUIT_TIMEOUT)

    def shutdown_reason(self, process: subprocess.Popen[bytes]) -> str | None:
        """The ``reason`` of QEMU's last SHUTDOWN event (``guest-reset``: the guest rebooted)."""
        conn = None
        for _ in range(200):  # QEMU makes its socket right after it starts
            if process.poll() is not None:
                return None
            try:
                conn = qmp_connect(self.events, timeout=QMP_TIMEOUT)
                break
            except OSError:
                time.sleep(0.05)
        if conn is None:
            return None
        reason = None
        with conn:
            conn.settimeout(None)
            with contextlib.suppress(OSError, ValueError):
                for message in qmp_lines(conn):
                    if message.get("event") == "SHUTDOWN":
                        reason = message.get("data", {}).get("reason")
        return reason if isinstance(reason, str) else None
