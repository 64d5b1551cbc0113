"""Which disks carry the installed system, in the installed system and in rescue alike.

In rescue nothing is mounted and an all-HDD server has nothing solid-state, so mounts and
rotation are not enough. A disk is a system disk when any of these says so:

* it holds something mounted at ``/``, ``/boot``, ``/boot/efi``, ``/usr``, ``/var``, or swap in use;
* it holds an EFI system partition (a FAT filesystem on an ESP-typed or ``EFI_SYSPART``
  partition) or a BIOS boot partition (GRUB's);
* an installed system's ``/etc/fstab`` (read from its root filesystem, read-only) mounts ``/``,
  ``/boot``, an ESP, ``/usr``, ``/var`` or swap from it;
* it holds a member of an array (assembled or not) that also lies on a system disk;
* OVH's hardware specification says its disk group is the system group (``defaultDiskGroupId``).

A system disk is never selected, whatever ``wipe`` says.
"""

from __future__ import annotations

from fleet.plans.disks.arrays import arrays, member_disks
from fleet.plans.disks.lsblk import BlockDev
from fleet.plans.disks.probe import Probe
from fleet.plans.disks.signatures import FstabEntry

#: Mount points that make a disk a system disk.
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/efi", "/usr", "/var", "[SWAP]")
ESP_PARTTYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
BIOS_BOOT_PARTTYPE = "21686148-6449-6e6f-744e-656564454649"
#: How far a disk's size may be from the size OVH's specification gives its group.
SPEC_TOLERANCE = 0.12


def disk_kind(disk: BlockDev) -> str:
    """NVME, SSD or HDD, as OVH's ``diskType`` classes them."""
    if disk.tran == "nvme" or disk.name.startswith("nvme"):
        return "NVME"
    return "HDD" if disk.rota else "SSD"


def _mark(why: dict[str, str], disks: list[BlockDev], reason: str) -> None:
    for disk in disks:
        why.setdefault(disk.name, reason)


def _by_mounts(probe: Probe, why: dict[str, str]) -> None:
    for disk in probe.disks:
        for node in disk.walk():
            mounted = [m for m in node.mountpoints if m in SYSTEM_MOUNTS]
            if mounted:
                why.setdefault(disk.name, f"holds {node.path} mounted at {mounted[0]}")
    paths = {n.path: n.name for d in probe.disks for n in d.walk()}
    for source, target in probe.mounts:
        if target in SYSTEM_MOUNTS and source in paths:
            _mark(why, probe.disks_holding(paths[source]), f"holds {source} mounted at {target}")
    for source in probe.swaps:
        if source in paths:
            _mark(why, probe.disks_holding(paths[source]), f"holds {source}, swap in use")


def _is_esp(node: BlockDev, probe: Probe) -> bool:
    low = probe.lowlevel.get(node.path)
    fat = node.fstype == "vfat" or (low is not None and low.blkid.get("TYPE") == "vfat")
    return fat and (node.parttype == ESP_PARTTYPE or node.label == "EFI_SYSPART")


def _by_boot_partitions(probe: Probe, why: dict[str, str]) -> None:
    for disk in probe.disks:
        for node in disk.walk():
            if _is_esp(node, probe):
                why.setdefault(disk.name, f"holds the EFI system partition {node.path}")
            elif node.type == "part" and node.parttype == BIOS_BOOT_PARTTYPE:
                why.setdefault(disk.name, f"holds the BIOS boot partition {node.path} (GRUB)")


def _matches(node: BlockDev, entry: FstabEntry) -> bool:
    kind, sep, value = entry.source.partition("=")
    if not sep:
        return node.path == entry.source
    wanted = {"UUID": node.uuid, "LABEL": node.label, "PARTUUID": node.partuuid}.get(kind)
    return bool(wanted) and wanted is not None and wanted.lower() == value.strip('"').lower()


def _system_entry(entry: FstabEntry) -> bool:
    return entry.target in SYSTEM_MOUNTS or entry.fstype == "swap"


def _by_installed(probe: Probe, why: dict[str, str]) -> None:
    nodes = [n for d in probe.disks for n in d.walk()]
    for root, entries in probe.installed.items():
        for entry in filter(_system_entry, entries):
            for node in nodes:
                if _matches(node, entry):
                    where = "swap" if entry.fstype == "swap" else entry.target
                    reason = f"holds {node.path}, {where} of the installed system on {root}"
                    _mark(why, probe.disks_holding(node.name), reason)


def _by_arrays(probe: Probe, why: dict[str, str]) -> None:
    """Transitive closure over arrays sharing members with system disks."""
    views = [(a, member_disks(probe, a)) for a in arrays(probe)]
    for _ in range(len(probe.disks)):  # bounded by the number of disks
        grown = False
        for array, disks in views:
            system = [d for d in disks if d in why]
            for other in (d for d in disks if d not in why):
                if system:
                    name = array.device or f"array UUID {array.uuid}"
                    why[other] = f"holds a member of {name} together with system disk {system[0]}"
                    grown = True
        if not grown:
            break


def _fits(disk: BlockDev, group: tuple[str, int, int]) -> bool:
    kind, _, size_gb = group
    size = size_gb * 1_000_000_000
    return disk_kind(disk) == kind and abs(disk.size - size) <= size * SPEC_TOLERANCE


def _by_spec(probe: Probe, why: dict[str, str]) -> list[str]:
    """Mark the disks of OVH's system group; a problem when the groups cannot be told apart
    and fewer system disks were found than the specification gives."""
    spec = probe.spec
    if spec is None:
        return []
    kind, count, size_gb = spec.system
    group = f"{count}x {size_gb} GB {kind}"
    fitting = [d for d in probe.disks if _fits(d, spec.system)]
    if not any(any(_fits(d, other) for d in fitting) for other in spec.others):
        reason = f"OVH's hardware specification: the system disk group is {group}"
        _mark(why, fitting, reason)
        return []
    found = [d.path for d in probe.disks if d.name in why]
    if len(found) >= count:
        return []
    return [
        f"OVH's hardware specification gives a system group of {group} and another group of "
        f"the same kind and size; fleet identified {len(found)} system disk(s) here "
        f"({', '.join(found) or 'none'}): refusing rather than guessing which disks carry "
        "the system"
    ]


def identify(probe: Probe) -> tuple[dict[str, str], list[str]]:
    """(disk name -> why it belongs to the installed system, host-level problems: the system
    disks cannot be identified with confidence)."""
    why: dict[str, str] = {}
    _by_mounts(probe, why)
    _by_boot_partitions(probe, why)
    _by_installed(probe, why)
    _by_arrays(probe, why)
    problems = _by_spec(probe, why)
    _by_arrays(probe, why)
    return why, problems


def system_disks(probe: Probe) -> dict[str, str]:
    """Disk name -> why it belongs to the installed system (see the module docstring)."""
    return identify(probe)[0]


def installed_root(probe: Probe) -> str:
    """The filesystem UUID of the installed system's root: a filesystem whose own /etc/fstab
    mounts "/" from itself ("" when none was found, or several disagree)."""
    nodes = {n.path: n for d in probe.disks for n in d.walk()}
    roots = set()
    for device, entries in probe.installed.items():
        node = nodes.get(device)
        root = next((e for e in entries if e.target == "/"), None)
        if node is not None and root is not None and _matches(node, root) and node.uuid:
            roots.add(node.uuid)
    return roots.pop() if len(roots) == 1 else ""


def system_arrays(probe: Probe, system: dict[str, str]) -> list[str]:
    """UUIDs of the arrays with a member on a system disk (those fleet may assemble)."""
    out = []
    for array in arrays(probe):
        if array.uuid and any(d in system for d in member_disks(probe, array)):
            out.append(array.uuid)
    return sorted(set(out))
