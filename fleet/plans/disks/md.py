"""md arrays as the kernel and mdadm report them: ``/proc/mdstat``, ``mdadm --detail --scan``
and ``mdadm --examine`` (both its ``--export`` and human formats). Pure functions, no I/O.

The line formats are parsed token by token, never by column position. The layouts they must be
right on are OVH's: md1 may be metadata 0.90 (its mdstat line has no ``super`` token), and a
rescue system may assemble the installed arrays under other numbers (md127, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fleet.plans.disks.lsblk import ParseError

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

    def describe_state(self) -> str:
        """``active raid5 [UUU_] degraded``, ``inactive``: the state a refusal shows."""
        if not self.active:
            return "inactive (assembled, not running)"
        words = ["active", self.level]
        if self.status:
            words.append(f"[{self.status}]")
        if self.degraded:
            words.append("degraded")
        if any(m.failed for m in self.members):
            words.append("with failed members")
        if self.progress:
            words.append(self.progress)
        return " ".join(w for w in words if w)


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
# mdadm --detail --scan


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


# ---------------------------------------------------------------------------------------------
# mdadm --examine


@dataclass(frozen=True)
class Superblock:
    """An md superblock as ``mdadm --examine`` reports it (``--export`` and human formats)."""

    uuid: str
    level: str  # raid1, raid0, container...
    devices: int
    name: str = ""  # "md4", "rescue:0"; empty for 0.90 superblocks
    metadata: str = ""  # "1.2", "0.90", "imsm"
    state: str = ""  # the superblock's "State": clean, active, "clean, degraded"...
    array_state: str = ""  # "AAA." ('A' active, '.' missing, 'R' replacing)
    role: str = ""  # "Active device 1", "spare", "faulty"
    events: str = ""

    @property
    def homehost(self) -> str:
        """``rescue`` for ``rescue:0``; "" when the name has no homehost part."""
        return self.name.split(":", 1)[0] if ":" in self.name else ""

    @property
    def short_name(self) -> str:
        """``0`` for ``rescue:0``, ``md4`` for ``md4``."""
        return self.name.split(":", 1)[1] if ":" in self.name else self.name

    def named(self, md_name: str) -> bool:
        """True for ``md4`` and ``HOST:md4`` when ``md_name`` is md4."""
        return self.short_name == md_name

    @property
    def missing_members(self) -> int:
        """Members the superblock's own array state says are missing ('.')."""
        return self.array_state.count(".")


_HUMAN_KEYS = {"array uuid": "uuid", "uuid": "uuid", "raid level": "level",
               "raid devices": "devices", "name": "name", "version": "metadata",
               "state": "state", "array state": "array_state", "device role": "role",
               "events": "events"}  # fmt: skip
_EXPORT_KEYS = {"uuid": "uuid", "level": "level", "devices": "devices", "name": "name",
                "metadata": "metadata", "events": "events"}  # fmt: skip


def _examine_values(text: str) -> dict[str, str]:
    """KEY=VALUE lines (``--export``) win; the human lines fill in the rest."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("MD_") and key[3:].lower() in _EXPORT_KEYS:
            values[_EXPORT_KEYS[key[3:].lower()]] = value.strip()
    for line in text.splitlines():
        key, sep, value = line.partition(" : ")
        name = _HUMAN_KEYS.get(key.strip().lower())
        if not sep or not name or name in values:
            continue
        value = value.strip()
        if name in ("uuid", "level", "devices", "metadata", "events", "array_state"):
            value = value.split()[0] if value else ""
        values[name] = value
    return values


def parse_examine(text: str) -> Superblock | None:
    """``mdadm --examine [--export] DEV`` output (either format or both); None = no superblock.

    A disk with only a partition table makes mdadm print ``MBR Magic`` and exit 0: that is not
    an md superblock, so a superblock needs a UUID and a level.
    """
    values = _examine_values(text)
    if not values.get("uuid") or not values.get("level"):
        return None
    name = re.sub(r"\s+\(local to host .*\)$", "", values.get("name", ""))
    try:
        devices = int(values.get("devices", "0"))
    except ValueError as exc:
        raise ParseError(f"mdadm --examine: device count {values['devices']!r}") from exc
    return Superblock(
        uuid=values["uuid"].lower(),
        level=values["level"],
        devices=devices,
        name=name,
        metadata=values.get("metadata", ""),
        state=values.get("state", ""),
        array_state=values.get("array_state", ""),
        role=values.get("role", ""),
        events=values.get("events", ""),
    )
