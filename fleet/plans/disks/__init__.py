"""What a server's disks hold and which of them the hybrid-raid plan may destroy.

Pure functions over the outputs of the server's own tools, no I/O: parsers
(:mod:`~fleet.plans.disks.lsblk`, :mod:`~fleet.plans.disks.md`,
:mod:`~fleet.plans.disks.signatures`), the parsed :class:`Probe`, the arrays and their owners
(:mod:`~fleet.plans.disks.arrays`), the system disks (:mod:`~fleet.plans.disks.system`), the
disk rule (:mod:`~fleet.plans.disks.select`), every source's signals
(:mod:`~fleet.plans.disks.signals`) and the guard (:mod:`~fleet.plans.disks.guard`).
"""

from fleet.plans.disks.arrays import ArrayView, Ownership, arrays, member_disks, owner_marker
from fleet.plans.disks.guard import Selection, Target, decision_digest, guard
from fleet.plans.disks.lsblk import LSBLK, BlockDev, ParseError, human, parse_lsblk, partition_path
from fleet.plans.disks.md import (
    MdArray,
    MdMember,
    ScanLine,
    Superblock,
    parse_detail_scan,
    parse_examine,
    parse_mdstat,
)
from fleet.plans.disks.probe import Probe, SystemSpec, probe_from
from fleet.plans.disks.select import (
    DEFAULT_TRANSPORTS,
    MIN_DISKS,
    DiskRule,
    Refused,
    choose,
    never_taken,
)
from fleet.plans.disks.signals import (
    LINUX_RAID_PARTTYPE,
    STUB_PARTITION_BYTES,
    Finding,
    disagreement,
)
from fleet.plans.disks.signatures import (
    DEVICE_PROBE,
    DeviceProbe,
    FstabEntry,
    parse_blkid,
    parse_device_probe,
    parse_findmnt,
    parse_fstab,
    parse_installed,
    parse_pvs,
    parse_swaps,
    parse_wipefs,
)
from fleet.plans.disks.system import (
    SYSTEM_MOUNTS,
    disk_kind,
    identify,
    installed_root,
    system_arrays,
    system_disks,
)

__all__ = [
    "DEFAULT_TRANSPORTS", "DEVICE_PROBE", "LINUX_RAID_PARTTYPE", "LSBLK", "MIN_DISKS",
    "STUB_PARTITION_BYTES", "SYSTEM_MOUNTS", "ArrayView", "BlockDev", "DeviceProbe",
    "DiskRule", "Finding", "FstabEntry", "MdArray", "MdMember", "Ownership", "ParseError",
    "Probe", "Refused", "ScanLine", "Selection", "Superblock", "SystemSpec", "Target",
    "arrays", "choose", "decision_digest", "disagreement", "disk_kind", "guard", "human",
    "identify", "installed_root", "member_disks", "never_taken", "owner_marker", "parse_blkid",
    "parse_detail_scan", "parse_device_probe", "parse_examine", "parse_findmnt",
    "parse_fstab", "parse_installed", "parse_lsblk", "parse_mdstat", "parse_pvs",
    "parse_swaps", "parse_wipefs", "partition_path", "probe_from", "system_arrays", "system_disks",
    "usable_bytes",
]  # fmt: skip


def usable_bytes(level: int, member_sizes: list[int]) -> int:
    """Roughly what the array offers: the smallest member times the data share of the level."""
    smallest = min(member_sizes)
    n = len(member_sizes)
    factor = {0: n, 1: 1, 5: n - 1, 6: n - 2, 10: n / 2}[level]
    return int(smallest * factor)
