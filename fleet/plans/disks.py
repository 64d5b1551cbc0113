"""What a server's disks hold, parsed from its own tools' output: pure functions, no I/O.

The hybrid-raid plan decides which disks it may destroy from these parsers alone, so they read
structured output where the tool has one (``lsblk -J``, ``mdadm --examine --export``,
``blkid -o export``) and parse the line formats (``/proc/mdstat``, ``mdadm --detail --scan``)
token by token, never by column position. The layouts they must be right on are OVH's: an NVMe
pair carrying the installed system on md RAID1 arrays (md1 may be metadata 0.90, whose mdstat
line has no ``super`` token), HDDs that arrive blank or with a 511 MiB stub partition, and a
rescue system that may assemble the installed arrays under other numbers (md127, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fleet.errors import PayloadError

#: OVH's leftover partition on HDDs (the "537 MB" partition of the seed): 511 MiB.
STUB_PARTITION_BYTES = 535_822_336
#: GPT type of a Linux RAID partition (what ``parted set N raid on`` sets).
LINUX_RAID_PARTTYPE = "a19d880f-05fc-4d3b-a006-743f0f84911e"
#: Mount points that make a disk a system disk.
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var", "[SWAP]")
#: Minimum number of member disks per RAID level.
MIN_DISKS = {0: 2, 1: 2, 5: 3, 6: 4, 10: 4}


class ParseError(PayloadError):
    """A tool's output is not in the format expected: refuse rather than guess."""


# ---------------------------------------------------------------------------------------------
# lsblk -J -b


@dataclass(frozen=True)
class BlockDev:
    """One node of ``lsblk -J -b`` output; ``children`` are partitions, md arrays, LVM..."""

    name: str
    path: str
    size: int
    type: str
    rota: bool
    tran: str = ""
    model: str = ""
    serial: str = ""
    fstype: str = ""
    label: str = ""
    uuid: str = ""
    parttype: str = ""
    mountpoint: str = ""
    children: tuple[BlockDev, ...] = ()

    def walk(self) -> Iterator[BlockDev]:
        """This node and every node below it (an md array under two members comes twice)."""
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def partitions(self) -> tuple[BlockDev, ...]:
        return tuple(c for c in self.children if c.type == "part")

    @property
    def solid_state(self) -> bool:
        return not self.rota or self.tran == "nvme" or self.name.startswith("nvme")

    def describe(self) -> str:
        """``/dev/sda (HGST HUS726040AL, serial K4XXXX, 4.0 TB)``: how refusals name a disk."""
        return f"{self.path} ({self.model or 'no model'}, serial {self.serial or '?'}, {human(self.size)})"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _flag(value: Any) -> bool:
    """lsblk prints ROTA as true/false (util-linux >= 2.33) or "0"/"1" (older)."""
    if isinstance(value, bool):
        return value
    return _text(value) in ("1", "true")


def _block(node: dict[str, Any]) -> BlockDev:
    name = _text(node.get("name"))
    mounts = node.get("mountpoints")
    mount = _text(node.get("mountpoint"))
    if not mount and isinstance(mounts, list):
        mount = next((_text(m) for m in mounts if m), "")
    try:
        size = int(node.get("size") or 0)
    except (TypeError, ValueError) as exc:
        raise ParseError(f"lsblk: size of {name!r} is not a byte count (use lsblk -b)") from exc
    return BlockDev(
        name=name,
        path=_text(node.get("path")) or f"/dev/{name}",
        size=size,
        type=_text(node.get("type")),
        rota=_flag(node.get("rota")),
        tran=_text(node.get("tran")),
        model=_text(node.get("model")),
        serial=_text(node.get("serial")),
        fstype=_text(node.get("fstype")),
        label=_text(node.get("label")),
        uuid=_text(node.get("uuid")),
        parttype=_text(node.get("parttype")).lower(),
        mountpoint=mount,
        children=tuple(_block(c) for c in node.get("children") or ()),
    )


def parse_lsblk(text: str) -> tuple[BlockDev, ...]:
    """The top-level devices of ``lsblk -J -b -o ...`` output, with their trees."""
    try:
        data = json.loads(text)
        nodes = data["blockdevices"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"lsblk -J output is not the expected JSON: {exc}") from exc
    if not isinstance(nodes, list):
        raise ParseError("lsblk -J: `blockdevices` is not a list")
    return tuple(_block(n) for n in nodes)


# ---------------------------------------------------------------------------------------------
# /proc/mdstat

_MDSTAT_HEAD = re.compile(r"^(md[\w.-]*)\s*:\s*(.*)$")
_MEMBER = re.compile(r"^([\w.:-]+)\[(\d+)\]((?:\([A-Z]\))*)$")
_COUNTS = re.compile(r"\[(\d+)/(\d+)\]")
_STATUS = re.compile(r"\[([U_]+)\]")
_PROGRESS = re.compile(r"\b(resync|recovery|reshape|check|repair)\s*=\s*([\d.]+%|DELAYED|PENDING)")


@dataclass(frozen=True)
class MdMember:
    name: str  # kernel name: sda1, nvme0n1p3
    slot: int
    flags: str = ""  # F faulty, S spare, W write-mostly, J journal, R replacement

    @property
    def failed(self) -> bool:
        return "F" in self.flags


@dataclass(frozen=True)
class MdArray:
    """One array of ``/proc/mdstat``."""

    name: str
    active: bool
    level: str  # raid1, raid0, linear...; "" for an inactive array
    members: tuple[MdMember, ...]
    blocks: int = 0  # 1 KiB blocks
    metadata: str = ""  # "1.2"; "0.90" when the line has no `super` token; "" if unknown
    read_only: bool = False
    raid_disks: int = 0
    working_disks: int = 0
    status: str = ""  # "UU", "U_"
    progress: str = ""  # "resync=12.5%"

    @property
    def degraded(self) -> bool:
        return "_" in self.status or self.working_disks < self.raid_disks

    @property
    def size_bytes(self) -> int:
        return self.blocks * 1024


def _mdstat_head(name: str, rest: str) -> dict[str, Any]:
    words = rest.split()
    state = words.pop(0) if words else ""
    read_only = False
    while words and words[0].startswith("("):
        read_only = read_only or "read-only" in words[0]
        words.pop(0)
    level = words.pop(0) if state == "active" and words and "[" not in words[0] else ""
    members = []
    for word in words:
        match = _MEMBER.match(word)
        if not match:
            raise ParseError(f"/proc/mdstat: {name}: member {word!r} is not NAME[SLOT]")
        flags = "".join(re.findall(r"\(([A-Z])\)", match.group(3)))
        members.append(MdMember(match.group(1), int(match.group(2)), flags))
    if state not in ("active", "inactive"):
        raise ParseError(f"/proc/mdstat: {name}: unknown state {state!r}")
    return {"name": name, "active": state == "active", "level": level, "members": tuple(members),
            "read_only": read_only}  # fmt: skip


def _mdstat_body(line: str, fields: dict[str, Any]) -> None:
    words = line.split()
    if len(words) >= 2 and words[1] == "blocks":
        fields["blocks"] = int(words[0])
        if "super" in words:
            fields["metadata"] = words[words.index("super") + 1]
        elif fields["active"]:
            fields["metadata"] = "0.90"  # 0.90 superblocks print no `super` token
        counts = _COUNTS.search(line)
        if counts:
            fields["raid_disks"], fields["working_disks"] = int(counts[1]), int(counts[2])
        status = _STATUS.search(line)
        if status:
            fields["status"] = status[1]
    progress = _PROGRESS.search(line)
    if progress:
        fields["progress"] = f"{progress[1]}={progress[2]}"


def parse_mdstat(text: str) -> tuple[MdArray, ...]:
    """Every array of ``/proc/mdstat``: state, level, members with flags, counts, status."""
    arrays: list[dict[str, Any]] = []
    for line in text.splitlines():
        head = _MDSTAT_HEAD.match(line)
        if head:
            arrays.append(_mdstat_head(head[1], head[2]))
        elif line[:1].isspace() and line.strip() and arrays:
            _mdstat_body(line, arrays[-1])
    return tuple(MdArray(**a) for a in arrays)


# ---------------------------------------------------------------------------------------------
# mdadm --detail --scan, mdadm --examine, blkid -o export


@dataclass(frozen=True)
class ScanLine:
    """``ARRAY /dev/md/md3 metadata=1.2 name=md3 UUID=...`` (``INACTIVE-ARRAY`` when inactive)."""

    device: str
    uuid: str
    metadata: str = ""
    name: str = ""
    active: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def parse_detail_scan(text: str) -> tuple[ScanLine, ...]:
    """Lines of ``mdadm --detail --scan [--verbose]``; indented ``devices=`` lines are skipped."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] not in ("ARRAY", "INACTIVE-ARRAY"):
            continue
        if len(words) < 2:
            raise ParseError(f"mdadm --detail --scan: no device in {line!r}")
        pairs = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        keys = {k.lower(): v for k, v in pairs.items()}
        uuid = keys.pop("uuid", "")
        if not uuid:
            raise ParseError(f"mdadm --detail --scan: no UUID in {line!r}")
        out.append(
            ScanLine(
                device=words[1],
                uuid=uuid.lower(),
                metadata=keys.pop("metadata", ""),
                name=keys.pop("name", ""),
                active=words[0] == "ARRAY",
                extra=keys,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Superblock:
    """An md superblock as ``mdadm --examine`` reports it."""

    uuid: str
    level: str  # raid1, raid0...
    devices: int
    name: str = ""  # "md4", "rescue:0"; empty for 0.90 superblocks

    def named(self, md_name: str) -> bool:
        """True for ``md4`` and ``HOST:md4`` when ``md_name`` is md4."""
        return self.name == md_name or (":" in self.name and self.name.split(":", 1)[1] == md_name)


_HUMAN_KEYS = {"array uuid": "uuid", "uuid": "uuid", "raid level": "level",
               "raid devices": "devices", "name": "name"}  # fmt: skip


def parse_examine(text: str) -> Superblock | None:
    """``mdadm --examine --export DEV`` (KEY=VALUE) or the human format; None = no superblock.

    A disk with only a partition table makes mdadm print ``MBR Magic`` and exit 0: that is not
    an md superblock, so a superblock needs a UUID and a level.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("MD_"):
            values[key[3:].lower()] = value.strip()
            continue
        key, sep, value = line.partition(" : ")
        name = _HUMAN_KEYS.get(key.strip().lower())
        if sep and name and name not in values:
            values[name] = value.strip().split()[0] if name != "name" else value.strip()
    if not values.get("uuid") or not values.get("level"):
        return None
    name = re.sub(r"\s+\(local to host .*\)$", "", values.get("name", ""))
    try:
        devices = int(values.get("devices", "0"))
    except ValueError as exc:
        raise ParseError(f"mdadm --examine: device count {values['devices']!r}") from exc
    return Superblock(values["uuid"].lower(), values["level"], devices, name)


def parse_blkid(text: str) -> dict[str, dict[str, str]]:
    """``blkid -o export``: blank-line separated KEY=VALUE blocks, keyed by DEVNAME."""
    out: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        key, sep, value = line.strip().partition("=")
        if sep:
            block[key] = value
        elif block:
            if "DEVNAME" in block:
                out[block["DEVNAME"]] = block
            block = {}
    return out


def human(size: int) -> str:
    """Decimal units, like disk vendors and the seed's ``4001GB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def partition_path(disk_path: str, number: int = 1) -> str:
    """``/dev/sda`` -> ``/dev/sda1``; ``/dev/nvme0n1`` -> ``/dev/nvme0n1p1``."""
    return f"{disk_path}p{number}" if disk_path[-1:].isdigit() else f"{disk_path}{number}"


# ---------------------------------------------------------------------------------------------
# Disk selection and the guards


@dataclass(frozen=True)
class Probe:
    """Everything the facts stage read from one host, parsed."""

    devices: tuple[BlockDev, ...]
    mdstat: tuple[MdArray, ...] = ()
    scan: tuple[ScanLine, ...] = ()
    examine: dict[str, Superblock] = field(default_factory=dict)  # device path -> superblock
    blkid: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def disks(self) -> tuple[BlockDev, ...]:
        return tuple(d for d in self.devices if d.type == "disk")

    def disk_of(self, kernel_name: str) -> BlockDev | None:
        """The disk holding ``kernel_name`` (itself or one of its partitions)."""
        for disk in self.disks:
            if disk.name == kernel_name or any(p.name == kernel_name for p in disk.partitions):
                return disk
        return None


@dataclass(frozen=True)
class DiskRule:
    """Which disks to build on: rotational, not the system's, and these optional filters."""

    min_size: int | None = None
    max_size: int | None = None
    model: str | None = None  # fnmatch glob on the model, case-insensitive
    count: int | None = None


@dataclass(frozen=True)
class Target:
    """The array the plan wants."""

    level: int
    md_name: str
    mount: str = "/opt"
    fs: str = "ext4"
    label: str = "data"

    @property
    def raid_level(self) -> str:
        return f"raid{self.level}"


@dataclass(frozen=True)
class Selection:
    """The guard's verdict for one host when it accepts the host."""

    disks: tuple[BlockDev, ...]  # in a stable order: by serial
    existing_uuid: str = ""  # our own array from an earlier run: the converged case
    stop_arrays: tuple[str, ...] = ()  # arrays wholly on wipe-listed disks, to stop first
    wiped: tuple[str, ...] = ()  # serials whose data the wipe list allowed destroying
    system: tuple[str, ...] = ()  # the disks recognised as the system's, with why
    skipped: tuple[str, ...] = ()  # other disks the rule did not choose, with why

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(partition_path(d.path) for d in self.disks)


class Refused(PayloadError):
    """The guard refuses the host; ``reasons`` name each disk and why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _groups(probe: Probe) -> list[tuple[str, set[str]]]:
    """Arrays as (name, disk names): assembled ones from mdstat, others from superblocks."""
    groups: list[tuple[str, set[str]]] = []
    for array in probe.mdstat:
        disks = {d.name for m in array.members if (d := probe.disk_of(m.name))}
        groups.append((f"/dev/{array.name}", disks))
    by_uuid: dict[str, set[str]] = {}
    for path, sb in probe.examine.items():
        disk = probe.disk_of(path.rsplit("/", 1)[-1])
        if disk:
            by_uuid.setdefault(sb.uuid, set()).add(disk.name)
    groups += [(f"array UUID {uuid}", disks) for uuid, disks in by_uuid.items()]
    return groups


def system_disks(probe: Probe) -> dict[str, str]:
    """Disk name -> why it belongs to the system: solid-state, holds /, /boot, swap..., or
    holds a member of an array that also lies on such a disk (the / and /boot RAID1s)."""
    why: dict[str, str] = {}
    for disk in probe.disks:
        mounted = [n for n in disk.walk() if n.mountpoint in SYSTEM_MOUNTS]
        if mounted:
            why[disk.name] = f"holds {mounted[0].path} mounted at {mounted[0].mountpoint}"
        elif disk.solid_state:
            why[disk.name] = "solid-state (NVMe/SSD), the system's disk group"
    groups = _groups(probe)
    for _ in range(len(probe.disks)):  # transitive closure, bounded by the number of disks
        grown = False
        for name, disks in groups:
            system = sorted(disks & why.keys())
            for other in sorted(disks - why.keys()):
                if system:
                    why[other] = f"holds a member of {name} together with system disk {system[0]}"
                    grown = True
        if not grown:
            break
    return why


def _rule_misses(disk: BlockDev, rule: DiskRule) -> str:
    """Why the rule does not choose ``disk``; empty when it does."""
    import fnmatch

    if rule.min_size is not None and disk.size < rule.min_size:
        return f"smaller than min_size {human(rule.min_size)}"
    if rule.max_size is not None and disk.size > rule.max_size:
        return f"larger than max_size {human(rule.max_size)}"
    if rule.model and not fnmatch.fnmatch(disk.model.lower(), rule.model.lower()):
        return f"model does not match {rule.model!r}"
    if disk.size == 0:
        return "has no media (size 0)"
    return ""


def choose(probe: Probe, rule: DiskRule, level: int) -> tuple[list[BlockDev], list[str], list[str]]:
    """Apply the rule: (chosen disks by serial, system disks with why, other skipped disks)."""
    system = system_disks(probe)
    chosen: list[BlockDev] = []
    skipped: list[str] = []
    for disk in probe.disks:
        miss = system.get(disk.name) or _rule_misses(disk, rule)
        if disk.name in system:
            continue
        if miss:
            skipped.append(f"{disk.describe()}: {miss}")
        else:
            chosen.append(disk)
    chosen.sort(key=lambda d: (d.serial, d.path))
    sys_text = [f"{d.describe()}: {system[d.name]}" for d in probe.disks if d.name in system]
    _check_count(chosen, rule, level, skipped)
    return chosen, sys_text, skipped


def _check_count(chosen: list[BlockDev], rule: DiskRule, level: int, skipped: list[str]) -> None:
    names = ", ".join(d.describe() for d in chosen) or "none"
    if rule.count is not None and len(chosen) != rule.count:
        raise Refused([f"the disk rule wants {rule.count} disks and matches {len(chosen)}: {names}"
                       + (f" (not chosen: {'; '.join(skipped)})" if skipped else "")])  # fmt: skip
    need = MIN_DISKS[level]
    if len(chosen) < need:
        raise Refused([f"RAID{level} needs at least {need} disks and the rule matches "
                       f"{len(chosen)}: {names}"
                       + (f" (not chosen: {'; '.join(skipped)})" if skipped else "")])  # fmt: skip
    if len(set(d.serial for d in chosen)) != len(chosen) or not all(d.serial for d in chosen):
        raise Refused([f"the chosen disks need distinct serials to be told apart: {names}"])


def find_ours(probe: Probe, chosen: list[BlockDev], target: Target) -> str:
    """The UUID of our array from an earlier run on exactly these disks, else "".

    Ours means: each chosen disk has one partition, every such partition carries a superblock
    of the same array with our name, level and member count, and no other device carries one.
    """
    members = [partition_path(d.path) for d in chosen]
    for disk, member in zip(chosen, members, strict=True):
        parts = disk.partitions
        if len(parts) != 1 or parts[0].path != member or parts[0].parttype != LINUX_RAID_PARTTYPE:
            return ""
    blocks = [probe.examine.get(m) for m in members]
    first = blocks[0]
    if first is None or any(b is None or b.uuid != first.uuid for b in blocks):
        return ""
    if not first.named(target.md_name) or first.level != target.raid_level:
        return ""
    others = [p for p, sb in probe.examine.items() if sb.uuid == first.uuid and p not in members]
    if first.devices != len(chosen) or others:
        return ""
    return first.uuid


@dataclass(frozen=True)
class Problem:
    """Why one disk may not be destroyed. ``wipeable``: the wipe list may allow it."""

    text: str
    wipeable: bool = True
    stop: str = ""  # an array to stop before wiping, when allowed


def _sb_text(sb: Superblock) -> str:
    name = f"{sb.name!r}, " if sb.name else ""
    return f"an md superblock (array {name}{sb.level}, {sb.devices} devices, UUID {sb.uuid})"


def _partition_text(part: BlockDev, probe: Probe) -> str:
    what = [human(part.size)]
    if part.size == STUB_PARTITION_BYTES:
        what = ["OVH's 511 MiB stub partition"]
    if part.fstype and part.fstype != "linux_raid_member":
        what.append(f"{part.fstype} filesystem" + (f" {part.label!r}" if part.label else ""))
    sb = probe.examine.get(part.path)
    if sb:
        what.append(_sb_text(sb))
    return f"has partition {part.path} ({', '.join(what)})"


def _mount_problems(disk: BlockDev, target: Target, ours: str) -> list[Problem]:
    out = []
    for node in disk.walk():
        if not node.mountpoint:
            continue
        if ours and node.type.startswith("raid") and node.mountpoint == target.mount:
            continue  # our own array, mounted where the plan wants it
        out.append(Problem(f"has {node.path} mounted at {node.mountpoint}", wipeable=False))
    return out


def _array_problems(
    disk: BlockDev, probe: Probe, ours_members: set[str], wipe_disks: set[str]
) -> list[Problem]:
    """Arrays in /proc/mdstat using this disk that are not ours."""
    names = {n.name for n in disk.walk()}
    out = []
    for array in probe.mdstat:
        if not names & {m.name for m in array.members}:
            continue
        member_names = {m.name for m in array.members}
        if member_names and member_names <= ours_members:
            continue
        holders = {d.name for m in array.members if (d := probe.disk_of(m.name))}
        state = "active" if array.active else "inactive"
        text = f"is a member of {state} array /dev/{array.name} ({array.level or 'level unknown'})"
        if holders <= wipe_disks:
            out.append(Problem(text, stop=f"/dev/{array.name}"))
        else:
            others = ", ".join(sorted(holders - wipe_disks))
            out.append(Problem(f"{text}, which also uses {others}", wipeable=False))
    return out


def _data_problems(disk: BlockDev, probe: Probe, ours: str) -> list[Problem]:
    """Filesystems, superblocks and partitions: data unless it is our own layout."""
    out = []
    if disk.fstype and disk.fstype != "linux_raid_member":
        label = f" {disk.label!r}" if disk.label else ""
        out.append(Problem(f"carries a {disk.fstype} filesystem{label} on the whole disk"))
    sb = probe.examine.get(disk.path)
    if sb:
        out.append(Problem(f"carries {_sb_text(sb)} on the whole disk"))
    if ours or _empty_raid_layout(disk, probe):
        return out
    out += [Problem(_partition_text(p, probe)) for p in disk.partitions]
    return out


def _empty_raid_layout(disk: BlockDev, probe: Probe) -> bool:
    """One Linux-RAID partition with nothing on it: what an interrupted earlier run leaves."""
    parts = disk.partitions
    if len(parts) != 1:
        return False
    part = parts[0]
    return (
        part.parttype == LINUX_RAID_PARTTYPE
        and part.path == partition_path(disk.path)
        and not part.fstype
        and not part.children
        and part.path not in probe.examine
    )


def _fs_mismatch(chosen: list[BlockDev], target: Target) -> str:
    """Our array, assembled, with another filesystem than the plan wants: "" when fine."""
    for disk in chosen:
        for node in disk.walk():
            wanted = (target.fs, target.label)
            if node.type.startswith("raid") and node.fstype and (node.fstype, node.label) != wanted:
                return (
                    f"array {node.path} already carries {node.fstype} {node.label!r}, "
                    f"the plan wants {target.fs} {target.label!r}"
                )
    return ""


_WIPE_HINT = "list its serial in `wipe` to allow destroying what it holds"


def _disk_problems(
    disk: BlockDev, probe: Probe, target: Target, ours: str, wipe_disks: set[str]
) -> list[Problem]:
    ours_members = _our_member_names(probe, ours) if ours else set()
    return (
        _mount_problems(disk, target, ours)
        + _array_problems(disk, probe, ours_members, wipe_disks)
        + _data_problems(disk, probe, ours)
    )


def _our_member_names(probe: Probe, uuid: str) -> set[str]:
    return {p.rsplit("/", 1)[-1] for p, sb in probe.examine.items() if sb.uuid == uuid}


def guard(probe: Probe, rule: DiskRule, target: Target, wipe: frozenset[str]) -> Selection:
    """Choose the disks and refuse anything that would destroy what the plan may not destroy.

    Raises :class:`Refused` naming every refused disk (path, model, serial) and why. A mounted
    disk or a disk in an array that also uses unlisted disks is refused even when wipe-listed.
    """
    chosen, system, skipped = choose(probe, rule, target.level)
    ours = find_ours(probe, chosen, target)
    wipe_disks = {d.name for d in chosen if d.serial in wipe}
    reasons: list[str] = []
    stops: list[str] = []
    wiped: list[str] = []
    for disk in chosen:
        problems = _disk_problems(disk, probe, target, ours, wipe_disks)
        hard = any(not p.wipeable for p in problems)
        if hard or (problems and disk.serial not in wipe):
            hint = "" if hard else f"; {_WIPE_HINT}"
            reasons.append(f"{disk.describe()}: {'; '.join(p.text for p in problems)}{hint}")
        elif problems:
            wiped.append(disk.serial)
            stops += [p.stop for p in problems if p.stop and p.stop not in stops]
    mismatch = _fs_mismatch(chosen, target) if ours else ""
    if mismatch and not all(d.serial in wipe for d in chosen):
        reasons.append(f"{mismatch}; list every member's serial in `wipe` to reformat it")
    if reasons:
        raise Refused(reasons)
    return Selection(
        disks=tuple(chosen),
        existing_uuid=ours,
        stop_arrays=tuple(stops),
        wiped=tuple(wiped),
        system=tuple(system),
        skipped=tuple(skipped),
    )


def usable_bytes(level: int, member_sizes: list[int]) -> int:
    """Roughly what the array offers: the smallest member times the data share of the level."""
    smallest = min(member_sizes)
    n = len(member_sizes)
    factor = {0: n, 1: 1, 5: n - 1, 6: n - 2, 10: n / 2}[level]
    return int(smallest * factor)
