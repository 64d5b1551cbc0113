"""Every source's view of what a disk holds, and where the sources disagree.

A disk is data-carrying when any source says so: lsblk (FSTYPE, PTTYPE, children, mounts),
blkid's low-level probe (``blkid -p``), ``wipefs -n``, ``mdadm --examine``, ``/proc/mdstat``,
``/proc/swaps``, findmnt, LVM's ``pvs``, sysfs holders and bcache. When sources disagree about a
device (one sees a signature, another sees none), that disagreement is itself a finding, showing
what each one said.

Two layouts are not data: fleet's own empty RAID partition (what an interrupted earlier run
leaves) and OVH's empty 511 MiB stub partition on a new server's HDDs, when every source agrees
that nothing is on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.plans.disks.lsblk import BlockDev, human, partition_path
from fleet.plans.disks.probe import Probe

#: OVH's leftover partition on HDDs (the "537 MB" partition of the seed): 511 MiB at 1 MiB.
STUB_PARTITION_BYTES = 535_822_336
STUB_START_SECTOR = 2048
#: GPT type of a Linux RAID partition (what ``parted set N raid on`` sets).
LINUX_RAID_PARTTYPE = "a19d880f-05fc-4d3b-a006-743f0f84911e"
#: wipefs signature types of a partition table itself (on the disk).
TABLE_SIGNATURES = frozenset({"gpt", "PMBR", "dos"})
#: Stacked devices that fleet cannot take apart (md arrays are handled as arrays).
_STACKED = ("dm-", "bcache", "loop", "nbd", "zram")


@dataclass(frozen=True)
class Finding:
    """Something on a disk. ``wipeable``: listing the disk's serial in ``wipe`` allows
    destroying it; ``needs``: other serials ``wipe`` must list too (the rest of an array)."""

    text: str
    wipeable: bool = True
    needs: frozenset[str] = frozenset()


def _low(probe: Probe, node: BlockDev) -> tuple[str, str, str, bool]:
    """(blkid -p view, wipefs view, holders, probed) of one node."""
    low = probe.lowlevel.get(node.path)
    if low is None:
        return "", "", "", False
    blkid = low.blkid_type or ("ambivalent: several signatures" if low.blkid_rc == 8 else "")
    if low.blkid_rc not in (0, 2, 8):
        blkid = f"failed: {low.blkid_error[:80]}"
    wipefs = ", ".join(low.wipefs_types)
    if low.wipefs_error:
        wipefs = f"failed: {low.wipefs_error[:80]}"
    return blkid, wipefs, ", ".join(low.holders), True


def views(probe: Probe, node: BlockDev) -> dict[str, str]:
    """What each source says is on ``node`` ("" = nothing)."""
    lsblk = node.fstype or (node.pttype if node.type == "disk" else "")
    sb = probe.examine.get(node.path)
    out = {"lsblk": lsblk, "mdadm --examine": f"{sb.level} superblock" if sb else ""}
    blkid, wipefs, _, probed = _low(probe, node)
    if probed:
        out["blkid -p"] = blkid
        out["wipefs -n"] = wipefs
    return out


def disagreement(probe: Probe, node: BlockDev) -> str:
    """A finding's text when sources disagree about ``node``; "" when they agree."""
    seen = views(probe, node)
    raid_said = any("linux_raid_member" in v for k, v in seen.items() if k != "mdadm --examine")
    has_md = bool(seen["mdadm --examine"])
    others = [bool(v) for k, v in seen.items() if k != "mdadm --examine"]
    if len(set(others)) <= 1 and raid_said == has_md:
        return ""
    said = "; ".join(f"{k}: {v or 'nothing'}" for k, v in seen.items())
    return f"sources disagree about {node.path} ({said})"


def is_empty(probe: Probe, node: BlockDev) -> bool:
    """Nothing on ``node`` by any source: no signature, superblock, holder or child."""
    low = probe.lowlevel.get(node.path)
    stacked = bool(low and (low.holders or low.bcache))
    return not any(views(probe, node).values()) and not node.children and not stacked


def _table_only(probe: Probe, disk: BlockDev) -> bool:
    """The disk itself carries a partition table and no other signature."""
    low = probe.lowlevel.get(disk.path)
    types = set(low.wipefs_types) if low else set()
    blkid = low.blkid.get("TYPE", "") if low else ""
    sb = disk.path in probe.examine
    return (
        bool(disk.pttype) and not disk.fstype and types <= TABLE_SIGNATURES and not blkid and not sb
    )


def _one_empty_partition(probe: Probe, disk: BlockDev) -> BlockDev | None:
    parts = disk.partitions
    if (
        len(parts) != 1
        or parts[0].path != partition_path(disk.path)
        or not _table_only(probe, disk)
    ):
        return None
    return parts[0] if is_empty(probe, parts[0]) else None


def empty_raid_layout(probe: Probe, disk: BlockDev) -> bool:
    """One empty Linux-RAID partition: what an interrupted earlier run of fleet leaves."""
    part = _one_empty_partition(probe, disk)
    return part is not None and part.parttype == LINUX_RAID_PARTTYPE


def empty_stub(probe: Probe, disk: BlockDev) -> bool:
    """OVH's leftover 511 MiB partition at 1 MiB with nothing on it, alone on a GPT disk."""
    part = _one_empty_partition(probe, disk)
    return (
        part is not None
        and disk.pttype in ("gpt", "")
        and part.size == STUB_PARTITION_BYTES
        and part.start in (None, STUB_START_SECTOR)
    )


def _node_text(probe: Probe, node: BlockDev) -> str:
    what = [
        node.fstype or (probe.lowlevel[node.path].blkid_type if node.path in probe.lowlevel else "")
    ]
    if node.label:
        what.append(repr(node.label))
    return " ".join(w for w in what if w)


def content_findings(probe: Probe, disk: BlockDev, array_members: set[str]) -> list[Finding]:
    """Signatures, partitions, stacked devices and disagreements (mounts and arrays apart).

    ``array_members``: kernel names already reported as members of an array (their
    ``linux_raid_member`` signature is that array, not another finding)."""
    out: list[Finding] = []
    for node in (disk, *disk.partitions):
        text = disagreement(probe, node)
        if text:
            out.append(Finding(text))
        out += _stacked(probe, node)
        if node.name in array_members:
            continue
        found = _node_text(probe, node)
        if node is disk and found and not (disk.pttype and not disk.fstype):
            out.append(Finding(f"carries {found} on the whole disk"))
        elif node is not disk:
            out.append(Finding(f"has partition {node.path} ({_partition_text(node, found)})"))
    if disk.pttype and not disk.partitions and _table_only(probe, disk):
        out.append(Finding(f"carries an empty {disk.pttype} partition table"))
    return out


def _partition_text(node: BlockDev, found: str) -> str:
    if node.size != STUB_PARTITION_BYTES:
        return human(node.size) + (f", {found}" if found else "")
    if found:  # say why this stub is data when an empty one is not
        return (
            f"OVH's 511 MiB stub partition, {found}: only an empty stub is replaced without `wipe`"
        )
    return "OVH's 511 MiB stub partition, beside other content"


def _stacked(probe: Probe, node: BlockDev) -> list[Finding]:
    out = []
    low = probe.lowlevel.get(node.path)
    holders = [h for h in (low.holders if low else ()) if h.startswith(_STACKED)]
    holders += [
        c.name for c in node.children if c.type not in ("part",) and not c.type.startswith("raid")
    ]
    for holder in dict.fromkeys(holders):
        out.append(Finding(f"{node.path} is in use by {holder} (stacked device): stop it first",
                           wipeable=False))  # fmt: skip
    if low and low.bcache:
        out.append(Finding(f"{node.path} is a bcache device"))
    if node.path in probe.pvs:
        vg = probe.pvs[node.path]
        out.append(
            Finding(f"{node.path} is an LVM physical volume" + (f" of VG {vg}" if vg else ""))
        )
    return out


def mount_findings(
    probe: Probe, disk: BlockDev, allowed_mount: str, ours: set[str]
) -> list[Finding]:
    """Mounts and swap in use on the disk: never wipeable. ``ours``: md device names of
    fleet's own array, which may be mounted at ``allowed_mount``."""
    out = []
    paths = {n.path: n for n in disk.walk()}
    mounts = {(n.path, m) for n in disk.walk() for m in n.mountpoints}
    mounts |= {(s, t) for s, t in probe.mounts if s in paths}
    mounts |= {(s, "swap") for s in probe.swaps if s in paths}
    for path, where in sorted(mounts):
        node = paths[path]
        if node.name in ours and where == allowed_mount:
            continue
        what = "in use as swap" if where in ("swap", "[SWAP]") else f"mounted at {where}"
        out.append(Finding(f"has {path} {what}", wipeable=False))
    return out
