"""What one VM host is made of (:class:`VmSpec`) and the QEMU command line of one power-on
(:func:`qemu_command`, pure: no file is touched).

Shapes beyond the default hybrid server (two NVMe system disks, two blank SATA HDDs): HDDs of
different sizes (``hdd_sizes_mib``) or on other AHCI ports than their order (``hdd_ports``: the
disk a serial names is not the one its device name suggests), a removable USB stick
(``usb_stick_mib``), a BMC virtual-media disk on USB (``virtual_media_mib``, as AMI's "Virtual
HDisk0"), and an all-HDD server whose system disks are SATA HDDs (``system_bus="sata"``).
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet.errors import UsageError

Mode = Literal["disk", "rescue"]

QEMU = "qemu-system-x86_64"
HDD_MODEL = "HGST HUS726040AL"
SYSTEM_HDD_MODEL = "WDC WD2000FYYZ-01UL1B2"
VIRTUAL_MEDIA = ("AMI", "Virtual HDisk0")  # vendor, product, as AMI BMCs present them
AHCI_PORTS = 6
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


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
    hdd_sizes_mib: tuple[int, ...] = ()  # per HDD; empty: hdd_size_mib each
    hdd_ports: tuple[int, ...] = ()  # AHCI port of each HDD; empty: the next free ones in order
    usb_stick_mib: int = 0  # a blank removable USB stick
    virtual_media_mib: int = 0  # a BMC virtual-media disk on USB
    system_bus: Literal["nvme", "sata"] = "nvme"

    @property
    def identity(self) -> str:
        return self.hostname or self.name

    def _tag(self, start: int) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[start : start + 6].upper()

    @property
    def hdd_serials(self) -> tuple[str, ...]:
        """Serials of the HDDs (stable per VM name), as ``lsblk -o SERIAL`` shows them."""
        return tuple(f"K7H{self._tag(0)}{i}" for i in range(self.hdd_count))

    @property
    def nvme_serials(self) -> tuple[str, str]:
        """Serials of the two system disks (NVMe, or SATA HDDs with ``system_bus="sata"``)."""
        return (f"S4EW{self._tag(6)}0", f"S4EW{self._tag(6)}1")

    @property
    def usb_serial(self) -> str:
        return f"USB{self._tag(12)}"

    @property
    def virtual_media_serial(self) -> str:
        return f"AMI{self._tag(18)}"

    @property
    def sizes_mib(self) -> tuple[int, ...]:
        return self.hdd_sizes_mib or (self.hdd_size_mib,) * self.hdd_count

    @property
    def ports(self) -> tuple[int, ...]:
        """AHCI port of each HDD (the system's SATA disks, if any, take ports 0 and 1)."""
        first = 2 if self.system_bus == "sata" else 0
        return self.hdd_ports or tuple(range(first, first + self.hdd_count))


def _check_disks(spec: VmSpec) -> None:
    if not 0 <= spec.hdd_count <= AHCI_PORTS or spec.memory_mib < 512:
        raise UsageError(f"{spec.name}: hdd_count 0..{AHCI_PORTS}, memory >= 512")
    if len(spec.sizes_mib) != spec.hdd_count or min(spec.sizes_mib, default=64) < 64:
        raise UsageError(f"{spec.name}: one size of at least 64 MiB per HDD (hdd_size_mib >= 64)")
    system = (0, 1) if spec.system_bus == "sata" else ()
    ports = spec.ports
    if (
        len(ports) != spec.hdd_count
        or len(set(ports)) != len(ports)
        or set(ports) & set(system)
        or any(not 0 <= p < AHCI_PORTS for p in ports)
    ):
        raise UsageError(f"{spec.name}: HDD ports {ports} must be distinct, free, 0..5")
    if spec.system_bus not in ("nvme", "sata"):
        raise UsageError(f"{spec.name}: system_bus is nvme or sata")


def validate(specs: Sequence[VmSpec]) -> None:
    names: set[str] = set()
    ends: set[tuple[str, int]] = set()
    for spec in specs:
        if not NAME_PATTERN.fullmatch(spec.name):
            raise UsageError(f"{spec.name!r}: not a usable VM name ([A-Za-z0-9._-])")
        if spec.hostname is not None and not _HOSTNAME.fullmatch(spec.hostname):
            raise UsageError(f"{spec.name}: not a hostname: {spec.hostname!r}")
        if not spec.address.startswith("127.") or not 1 <= spec.port <= 65535:
            raise UsageError(f"{spec.name}: {spec.address}:{spec.port} is not a loopback endpoint")
        _check_disks(spec)
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


@dataclass(frozen=True)
class BootSpec:
    """What one power-on boots: kernel, initramfs, command line, fw_cfg items (name -> file)."""

    mode: Mode
    kernel: Path
    initrd: Path
    cmdline: str
    fw_cfg: dict[str, Path]


def _sata(port: int, drive: str, model: str, serial: str) -> list[str]:
    device = f"ide-hd,bus=ide.{port},drive={drive},model={model},serial={serial}"
    return ["-device", device + ",rotation_rate=7200"]


def _system_disks(spec: VmSpec, nvmes: Sequence[Path]) -> list[str]:
    cmd: list[str] = []
    for i, (path, serial) in enumerate(zip(nvmes, spec.nvme_serials, strict=True)):
        cmd += ["-drive", f"if=none,id=nvme{i},file={path},format=qcow2,discard=unmap"]
        if spec.system_bus == "sata":
            cmd += _sata(i, f"nvme{i}", SYSTEM_HDD_MODEL, serial)
        else:
            cmd += ["-device", f"nvme,drive=nvme{i},serial={serial}"]
    return cmd


def _usb_disks(spec: VmSpec, stick: Path | None, vmedia: Path | None) -> list[str]:
    if stick is None and vmedia is None:
        return []
    cmd = ["-device", "qemu-xhci,id=xhci"]
    if stick is not None:
        cmd += ["-drive", f"if=none,id=stick,file={stick},format=qcow2"]
        cmd += [
            "-device",
            f"usb-storage,bus=xhci.0,drive=stick,removable=on,serial={spec.usb_serial}",
        ]
    if vmedia is not None:
        vendor, product = VIRTUAL_MEDIA
        cmd += ["-drive", f"if=none,id=vmedia,file={vmedia},format=qcow2"]
        cmd += ["-device", "usb-bot,bus=xhci.0,id=vmbot"]
        cmd += ["-device", f"scsi-hd,bus=vmbot.0,scsi-id=0,lun=0,drive=vmedia,vendor={vendor},"
                f"product={product},serial={spec.virtual_media_serial}"]  # fmt: skip
    return cmd


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
    stick: Path | None = None,
    vmedia: Path | None = None,
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
    cmd += _system_disks(spec, nvmes)
    for i, (path, serial, port) in enumerate(zip(hdds, spec.hdd_serials, spec.ports, strict=True)):
        cmd += ["-drive", f"if=none,id=hdd{i},file={path},format=qcow2"]
        cmd += _sata(port, f"hdd{i}", HDD_MODEL, serial)
    cmd += _usb_disks(spec, stick, vmedia)
    forward = f"hostfwd=tcp:{spec.address}:{spec.port}-:22"
    cmd += ["-netdev", f"user,id=net0,restrict=on,{forward}"]
    cmd += ["-device", "virtio-net-pci,netdev=net0"]
    return cmd
