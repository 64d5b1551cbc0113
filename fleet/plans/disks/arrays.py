"""The md arrays on a host, assembled or not, and whose they are.

An array is known by its UUID from the members' superblocks (``mdadm --examine``), joined with
``/proc/mdstat`` when it is assembled. Names never decide anything: an array is fleet's own only
when its UUID is one fleet recorded for this host, or when its name carries the marker fleet
stamps on the arrays it creates for this host with these parameters (:func:`owner_marker`), so
that ownership survives a lost store. Every other array is foreign.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from fleet.plans.disks.md import MdArray, Superblock
from fleet.plans.disks.probe import Probe

#: The marker's prefix: an md superblock name ``fleet-1a2b3c4d:md4`` was written by fleet.
MARKER_PREFIX = "fleet-"


def owner_marker(host_id: str, md_name: str, level: int) -> str:
    """The homehost fleet gives the array it creates on host ``host_id`` (its OVH service name,
    else its inventory name) for these parameters: ``fleet-`` and 8 hex digits."""
    digest = hashlib.sha256(f"{host_id}\0{md_name}\0raid{level}".encode()).hexdigest()
    return MARKER_PREFIX + digest[:8]


@dataclass(frozen=True)
class Ownership:
    """What identifies this host's own arrays: UUIDs fleet recorded in its store for this host,
    and the marker it stamps on arrays it creates here for this plan's parameters."""

    recorded: frozenset[str] = frozenset()
    marker: str = ""

    def why_ours(self, array: ArrayView, md_name: str) -> str:
        """Why ``array`` is fleet's own ("" when it is foreign)."""
        if array.uuid and array.uuid in self.recorded:
            return "its UUID is recorded in fleet's store for this host"
        if self.marker and array.name == f"{self.marker}:{md_name}":
            return f"its name {array.name!r} carries fleet's marker for this host and parameters"
        return ""


@dataclass(frozen=True)
class ArrayView:
    """One array: from ``/proc/mdstat`` if assembled, else from its members' superblocks."""

    uuid: str
    name: str
    level: str
    raid_devices: int
    members: tuple[str, ...]  # kernel names of the member devices seen: sda1, sdb
    device: str = ""  # /dev/md127 when assembled
    state: str = ""
    metadata: str = ""

    @property
    def assembled(self) -> bool:
        return bool(self.device)

    def describe(self, probe: Probe) -> str:
        """``array 'mediaserver:0' (UUID ..., raid5, 4 devices; members /dev/sda1 [serial
        X]...; not assembled, superblocks say: clean, array state AA..)``."""
        name = repr(self.name) if self.name else "without a name"
        members = ", ".join(_member_text(probe, m) for m in self.members) or "none seen"
        where = f"assembled as {self.device}, " if self.device else ""
        return (
            f"array {name} (UUID {self.uuid or 'unknown'}, {self.level or 'level unknown'}, "
            f"{self.raid_devices} devices; members {members}; {where}{self.state})"
        )


def _member_text(probe: Probe, member: str) -> str:
    disk = probe.disk_of(member)
    serial = f" [serial {disk.serial}]" if disk and disk.serial else ""
    return f"/dev/{member}{serial}"


def _superblock_of(probe: Probe, name: str) -> Superblock | None:
    path = next((n.path for d in probe.disks for n in d.walk() if n.name == name), f"/dev/{name}")
    return probe.examine.get(path)


def _newest(blocks: list[Superblock]) -> Superblock:
    def events(sb: Superblock) -> int:
        try:
            return int(sb.events.split(".")[-1])
        except ValueError:
            return -1

    return max(blocks, key=events)


def _sb_state(sb: Superblock) -> str:
    words = [f"superblock state {sb.state or 'unknown'}"]
    if sb.array_state:
        words.append(f"array state {sb.array_state}")
        if sb.missing_members:
            words.append(f"{sb.missing_members} of {sb.devices} members missing")
    return ", ".join(words)


def _assembled(probe: Probe, array: MdArray) -> ArrayView:
    blocks = [sb for m in array.members if (sb := _superblock_of(probe, m.name))]
    uuids = {sb.uuid for sb in blocks}
    sb = _newest(blocks) if blocks else None
    return ArrayView(
        uuid=uuids.pop() if len(uuids) == 1 else "",
        name=sb.name if sb else "",
        level=array.level or (sb.level if sb else ""),
        raid_devices=array.raid_disks or (sb.devices if sb else len(array.members)),
        members=tuple(m.name for m in array.members),
        device=f"/dev/{array.name}",
        state=array.describe_state(),
        metadata=array.metadata or (sb.metadata if sb else ""),
    )


def arrays(probe: Probe) -> list[ArrayView]:
    """Every array on the host: assembled ones first, then the others by superblock UUID."""
    out = [_assembled(probe, a) for a in probe.mdstat]
    for i, view in enumerate(out):  # members carrying its superblock, not in the running array
        extra = [p.rsplit("/", 1)[-1] for p, sb in probe.examine.items() if view.uuid == sb.uuid]
        missing = sorted(set(extra) - set(view.members))
        if view.uuid and missing:
            out[i] = replace(view, members=view.members + tuple(missing))
    taken = {m for view in out for m in view.members}
    groups: dict[str, list[tuple[str, Superblock]]] = {}
    for path, sb in probe.examine.items():
        name = path.rsplit("/", 1)[-1]
        if name not in taken and sb.uuid not in {v.uuid for v in out if v.uuid}:
            groups.setdefault(sb.uuid, []).append((name, sb))
    for uuid, found in groups.items():
        sb = _newest([s for _, s in found])
        out.append(
            ArrayView(
                uuid=uuid,
                name=sb.name,
                level=sb.level,
                raid_devices=sb.devices,
                members=tuple(sorted(n for n, _ in found)),
                state="not assembled; " + _sb_state(sb),
                metadata=sb.metadata,
            )
        )
    return out


def member_disks(probe: Probe, array: ArrayView) -> list[str]:
    """Kernel names of the disks holding the array's members, in order, once each."""
    out: list[str] = []
    for member in array.members:
        disk = probe.disk_of(member)
        if disk is not None and disk.name not in out:
            out.append(disk.name)
    return out
