"""What else says a device holds something: blkid (cache and low-level probe), ``wipefs -n``,
``/proc/swaps``, ``findmnt``, LVM's ``pvs``, sysfs holders and bcache, and the ``/etc/fstab`` of
an installed system. Pure parsers, no I/O.

The facts stage probes every disk and partition in one loop (:data:`DEVICE_PROBE`) whose output
is cut into sections by ``@@`` marker lines: :func:`parse_device_probe` reads it back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fleet.plans.disks.lsblk import ParseError

#: For each device given as "$@": mdadm --examine (export, then human), blkid's low-level probe
#: with its exit status, wipefs -n, sysfs holders and a bcache marker. Read-only throughout.
DEVICE_PROBE = (
    'for d in "$@"; do n=${d##*/}; echo "@@dev $d"; echo "@@examine"; '
    'mdadm --examine --export "$d" 2>/dev/null; mdadm --examine "$d" 2>/dev/null; '
    'echo "@@blkid"; blkid -p -o export "$d" 2>&1; echo "@@rc $?"; '
    'echo "@@wipefs"; wipefs -n -J "$d" 2>&1; echo "@@rc $?"; '
    'echo "@@holders"; ls "/sys/class/block/$n/holders" 2>/dev/null; '
    '[ ! -e "/sys/class/block/$n/bcache" ] || echo "@@bcache"; done; true'
)


def parse_blkid(text: str) -> dict[str, dict[str, str]]:
    """``blkid -o export``: blank-line separated KEY=VALUE blocks, keyed by DEVNAME."""
    out: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        key, sep, value = line.strip().partition("=")
        if sep and key.isupper():
            block[key] = value
        elif block:
            if "DEVNAME" in block:
                out[block["DEVNAME"]] = block
            block = {}
    return out


@dataclass(frozen=True)
class DeviceProbe:
    """One device's low-level view (a section of :data:`DEVICE_PROBE` output)."""

    path: str
    examine: str = ""  # raw mdadm --examine text (parse with md.parse_examine)
    blkid: dict[str, str] = field(default_factory=dict)  # blkid -p: TYPE, PTTYPE, LABEL...
    blkid_rc: int = 2  # 0 found, 2 nothing, 8 ambivalent (several signatures)
    blkid_error: str = ""
    wipefs: tuple[dict[str, str], ...] = ()  # every signature wipefs -n finds
    wipefs_error: str = ""
    holders: tuple[str, ...] = ()  # kernel names stacked on it (md127, dm-0, bcache0)
    bcache: bool = False

    @property
    def blkid_type(self) -> str:
        return self.blkid.get("TYPE") or self.blkid.get("PTTYPE") or ""

    @property
    def wipefs_types(self) -> tuple[str, ...]:
        return tuple(sig.get("type", "?") for sig in self.wipefs)


def parse_wipefs(text: str, where: str = "") -> tuple[dict[str, str], ...]:
    """``wipefs -n -J``: the signatures found (empty JSON list or no output: none)."""
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
        sigs = data["signatures"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"wipefs -n -J {where}: not the expected JSON: {text[:80]!r}") from exc
    return tuple({str(k): str(v) for k, v in sig.items() if v is not None} for sig in sigs)


def _sections(text: str) -> dict[str, dict[str, list[str]]]:
    devices: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    section = ""
    for line in text.splitlines():
        if line.startswith("@@dev "):
            current = devices.setdefault(line[6:].strip(), {})
            section = ""
        elif current is not None and line.startswith("@@rc "):
            current[section + ".rc"] = [line[5:].strip()]
        elif current is not None and line.startswith("@@"):
            section = line[2:].strip()
            current.setdefault(section, [])
        elif current is not None and section:
            current[section].append(line)
    return devices


def _rc(lines: list[str] | None, where: str) -> int:
    try:
        return int((lines or ["0"])[0])
    except ValueError:
        raise ParseError(f"device probe of {where}: exit status {lines!r}") from None


def _one_device(path: str, parts: dict[str, list[str]]) -> DeviceProbe:
    blkid_text = "\n".join(parts.get("blkid", []))
    blkid_rc = _rc(parts.get("blkid.rc"), path)
    found = parse_blkid(blkid_text)
    values = next(iter(found.values()), {}) if blkid_rc == 0 else {}
    wipefs_text = "\n".join(parts.get("wipefs", []))
    wipefs_rc = _rc(parts.get("wipefs.rc"), path)
    return DeviceProbe(
        path=path,
        examine="\n".join(parts.get("examine", [])),
        blkid=values,
        blkid_rc=blkid_rc,
        blkid_error=blkid_text.strip() if blkid_rc not in (0, 2) else "",
        wipefs=parse_wipefs(wipefs_text, path) if wipefs_rc == 0 else (),
        wipefs_error=wipefs_text.strip()[:200] if wipefs_rc != 0 else "",
        holders=tuple(h.strip() for h in parts.get("holders", []) if h.strip()),
        bcache="bcache" in parts,
    )


def parse_device_probe(text: str) -> dict[str, DeviceProbe]:
    """The output of :data:`DEVICE_PROBE`, per device path."""
    return {path: _one_device(path, parts) for path, parts in _sections(text).items()}


def parse_swaps(text: str) -> tuple[str, ...]:
    """Device paths of ``/proc/swaps`` (its first line is a header)."""
    lines = text.splitlines()
    return tuple(line.split()[0] for line in lines[1:] if line.split())


def parse_findmnt(text: str) -> tuple[tuple[str, str], ...]:
    """(source, target) of every mount of ``findmnt -J -l -o SOURCE,TARGET``."""
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
        nodes = data["filesystems"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"findmnt -J output is not the expected JSON: {exc}") from exc
    out: list[tuple[str, str]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            source = re.sub(r"\[.*\]$", "", str(item.get("source") or ""))
            out.append((source, str(item.get("target") or "")))
            walk(item.get("children") or [])

    walk(nodes)
    return tuple(out)


def parse_pvs(text: str) -> dict[str, str]:
    """``pvs --reportformat json -o pv_name,vg_name``: PV device -> VG name ("" if none)."""
    if not text.strip():
        return {}
    try:
        reports = json.loads(text)["report"]
        rows = [pv for report in reports for pv in report.get("pv", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"pvs --reportformat json output is not the expected JSON: {exc}") from exc
    return {str(r.get("pv_name", "")): str(r.get("vg_name", "")) for r in rows}


@dataclass(frozen=True)
class FstabEntry:
    """One line of an installed system's ``/etc/fstab``."""

    source: str  # UUID=..., LABEL=..., PARTUUID=..., /dev/...
    target: str  # "/", "/boot", "none" for swap
    fstype: str


def parse_fstab(text: str) -> tuple[FstabEntry, ...]:
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and not words[0].startswith("#"):
            out.append(FstabEntry(words[0], words[1], words[2]))
    return tuple(out)


def parse_installed(text: str) -> dict[str, tuple[FstabEntry, ...]]:
    """``@@fstab DEV`` sections: the ``/etc/fstab`` found on each filesystem that has one."""
    out: dict[str, tuple[FstabEntry, ...]] = {}
    for device, lines in _fstab_sections(text).items():
        entries = parse_fstab("\n".join(lines))
        if any(e.target == "/" for e in entries):
            out[device] = entries
    return out


def _fstab_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@fstab "):
            current = sections.setdefault(line[8:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections
