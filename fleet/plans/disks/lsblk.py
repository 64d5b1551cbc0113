"""``lsblk -J -b`` parsed into a tree of :class:`BlockDev`: pure functions, no I/O.

The columns asked for (:data:`LSBLK`) are every one the guards use: identity (serial, WWN,
model, vendor), where the disk hangs (``TRAN``, ``SUBSYSTEMS``, ``HCTL``), what kind of medium
(``ROTA``, ``RM`` removable, ``RO`` read-only, ``HOTPLUG``), and what it holds (``PTTYPE``,
``FSTYPE``, partitions with their type and start, every mount point). util-linux prints flags as
``true``/``false`` (2.33+) or ``"0"``/``"1"`` (older); both are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fleet.errors import PayloadError

COLUMNS = (
    "NAME,KNAME,PATH,SIZE,TYPE,ROTA,RM,RO,HOTPLUG,TRAN,SUBSYSTEMS,HCTL,VENDOR,MODEL,SERIAL,WWN,"
    "STATE,PTTYPE,FSTYPE,LABEL,UUID,PARTTYPE,PARTLABEL,PARTUUID,START,MOUNTPOINTS,PKNAME"
)
#: The command the facts stage runs (and the VM capture records).
LSBLK = f"lsblk -J -b -o {COLUMNS}"


class ParseError(PayloadError):
    """A tool's output is not in the format expected: refuse rather than guess."""


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
    mountpoints: tuple[str, ...] = ()
    children: tuple[BlockDev, ...] = ()
    removable: bool = False
    read_only: bool = False
    hotplug: bool = False
    subsystems: str = ""  # "block:scsi:usb:pci"
    hctl: str = ""
    vendor: str = ""
    wwn: str = ""
    state: str = ""
    pttype: str = ""  # "gpt", "dos"
    partlabel: str = ""
    partuuid: str = ""
    start: int | None = None  # first sector of a partition

    @property
    def mountpoint(self) -> str:
        return self.mountpoints[0] if self.mountpoints else ""

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

    @property
    def on_usb(self) -> bool:
        return self.tran == "usb" or "usb" in self.subsystems.split(":")

    def describe(self) -> str:
        """``/dev/sda (HGST HUS726040AL, serial K4XXXX, 4.0 TB)``: how refusals name a disk."""
        return f"{self.path} ({self.model or 'no model'}, serial {self.serial or '?'}, {human(self.size)})"

    def record(self) -> dict[str, Any]:
        """Path, model, serial, size and transport as JSON data (the plan's decisions)."""
        return {"path": self.path, "model": self.model, "serial": self.serial,
                "size": self.size, "transport": self.tran}  # fmt: skip


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _flag(value: Any) -> bool:
    """lsblk prints flags as true/false (util-linux >= 2.33) or "0"/"1" (older)."""
    if isinstance(value, bool):
        return value
    return _text(value) in ("1", "true")


def _int(value: Any, name: str, column: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ParseError(f"lsblk: {column} of {name!r} is not a number (use lsblk -b)") from exc


def _mounts(node: dict[str, Any]) -> tuple[str, ...]:
    found = [_text(m) for m in node.get("mountpoints") or () if m]
    single = _text(node.get("mountpoint"))
    if single and single not in found:
        found.insert(0, single)
    return tuple(found)


def _block(node: dict[str, Any]) -> BlockDev:
    name = _text(node.get("name"))
    return BlockDev(
        name=name,
        path=_text(node.get("path")) or f"/dev/{name}",
        size=_int(node.get("size"), name, "size") or 0,
        type=_text(node.get("type")),
        rota=_flag(node.get("rota")),
        tran=_text(node.get("tran")),
        model=_text(node.get("model")),
        serial=_text(node.get("serial")),
        fstype=_text(node.get("fstype")),
        label=_text(node.get("label")),
        uuid=_text(node.get("uuid")),
        parttype=_text(node.get("parttype")).lower(),
        mountpoints=_mounts(node),
        children=tuple(_block(c) for c in node.get("children") or ()),
        removable=_flag(node.get("rm")),
        read_only=_flag(node.get("ro")),
        hotplug=_flag(node.get("hotplug")),
        subsystems=_text(node.get("subsystems")),
        hctl=_text(node.get("hctl")),
        vendor=_text(node.get("vendor")),
        wwn=_text(node.get("wwn")),
        state=_text(node.get("state")),
        pttype=_text(node.get("pttype")),
        partlabel=_text(node.get("partlabel")),
        partuuid=_text(node.get("partuuid")).lower(),
        start=_int(node.get("start"), name, "start"),
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
