"""Everything the facts stage read from one host, parsed: :class:`Probe`.

The facts stage returns the raw outputs (so the journal keeps what the host looked like when
fleet decided); :func:`probe_from` parses them. OVH's hardware specification of the server, when
known, travels with them as :class:`SystemSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.plans.disks.lsblk import BlockDev, ParseError, parse_lsblk
from fleet.plans.disks.md import (
    MdArray,
    ScanLine,
    Superblock,
    parse_detail_scan,
    parse_examine,
    parse_mdstat,
)
from fleet.plans.disks.signatures import (
    DeviceProbe,
    FstabEntry,
    parse_blkid,
    parse_device_probe,
    parse_findmnt,
    parse_installed,
    parse_pvs,
    parse_swaps,
)


@dataclass(frozen=True)
class SystemSpec:
    """OVH's ``specifications/hardware``: the system disk group (``defaultDiskGroupId``) and
    the other groups, as (kind, count, size in GB); kind is NVME, SSD or HDD."""

    system: tuple[str, int, int]
    others: tuple[tuple[str, int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"system": list(self.system), "others": [list(g) for g in self.others]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SystemSpec:
        try:
            kind, count, size = data["system"]
            others = tuple((str(k), int(c), int(s)) for k, c, s in data.get("others", ()))
            return cls((str(kind), int(count), int(size)), others)
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError(f"hardware specification facts: {exc}") from exc


@dataclass(frozen=True)
class Probe:
    """Everything the facts stage read from one host, parsed."""

    devices: tuple[BlockDev, ...]
    mdstat: tuple[MdArray, ...] = ()
    scan: tuple[ScanLine, ...] = ()
    examine: dict[str, Superblock] = field(default_factory=dict)  # device path -> superblock
    blkid: dict[str, dict[str, str]] = field(default_factory=dict)  # blkid's cache
    lowlevel: dict[str, DeviceProbe] = field(default_factory=dict)  # empty: not probed
    swaps: tuple[str, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()  # (source, target) from findmnt
    pvs: dict[str, str] = field(default_factory=dict)  # LVM PV -> VG
    installed: dict[str, tuple[FstabEntry, ...]] = field(default_factory=dict)
    spec: SystemSpec | None = None
    live: bool = False  # gathered on the running installed system, not in rescue

    @property
    def disks(self) -> tuple[BlockDev, ...]:
        return tuple(d for d in self.devices if d.type == "disk")

    def disk_of(self, kernel_name: str) -> BlockDev | None:
        """The disk holding ``kernel_name`` (itself or one of its partitions)."""
        for disk in self.disks:
            if disk.name == kernel_name or any(p.name == kernel_name for p in disk.partitions):
                return disk
        return None

    def disk_by_path(self, path: str) -> BlockDev | None:
        return self.disk_of(path.rsplit("/", 1)[-1])

    def disks_holding(self, node_name: str) -> list[BlockDev]:
        """Every disk with ``node_name`` anywhere in its tree (an md array: all its members)."""
        return [d for d in self.disks if any(n.name == node_name for n in d.walk())]


def _parse_examine_map(raw: Mapping[str, Any]) -> dict[str, Superblock]:
    return {
        str(path): sb
        for path, text in dict(raw or {}).items()
        if (sb := parse_examine(str(text))) is not None
    }


def probe_from(raw: Mapping[str, Any]) -> Probe:
    """Parse the facts stage's raw outputs (see ``fleet.plans.hybrid_raid.facts``)."""
    lowlevel = parse_device_probe(str(raw.get("devices") or ""))
    examine = _parse_examine_map(raw.get("examine") or {})
    for path, dev in lowlevel.items():
        sb = parse_examine(dev.examine)
        if sb is not None:
            examine.setdefault(path, sb)
    spec = raw.get("spec")
    return Probe(
        devices=parse_lsblk(str(raw["lsblk"])),
        mdstat=parse_mdstat(str(raw.get("mdstat") or "")),
        scan=parse_detail_scan(str(raw.get("scan") or "")),
        examine=examine,
        blkid=parse_blkid(str(raw.get("blkid") or "")),
        lowlevel=lowlevel,
        swaps=parse_swaps(str(raw.get("swaps") or "")),
        mounts=parse_findmnt(str(raw.get("findmnt") or "")),
        pvs=parse_pvs(str(raw.get("pvs") or "")),
        installed=parse_installed(str(raw.get("installed") or "")),
        spec=SystemSpec.from_json(spec) if isinstance(spec, Mapping) else None,
        live=bool(raw.get("live")),
    )
