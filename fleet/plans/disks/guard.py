"""The guard: choose the disks, then refuse anything that would destroy what the plan may not.

:func:`guard` returns a :class:`Selection` (the disks, why each was taken, every other disk and
why not, what ``wipe`` lets it destroy) or raises :class:`Refused` naming every refused disk and
why. Arrays are judged by identity (:mod:`fleet.plans.disks.arrays`): fleet's own array on
exactly the chosen disks is the converged case; any other array on a chosen disk is refused,
named with its UUID, level, members and state, unless ``wipe`` lists every member's serial.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fleet.plans.disks.arrays import ArrayView, Ownership, arrays, member_disks
from fleet.plans.disks.lsblk import BlockDev, human, partition_path
from fleet.plans.disks.probe import Probe
from fleet.plans.disks.select import DiskRule, Refused, choose
from fleet.plans.disks.signals import (
    Finding,
    content_findings,
    disagreement,
    empty_raid_layout,
    empty_stub,
    mount_findings,
)
from fleet.plans.disks.system import identify

WIPE_HINT = "list its serial in `wipe` to allow destroying what it holds"


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
    existing_uuid: str = ""  # fleet's own array from an earlier run: the converged case
    wipe_disks: tuple[str, ...] = ()  # paths of chosen disks whose contents wipe destroys
    wiped: tuple[str, ...] = ()  # their serials
    system: tuple[str, ...] = ()  # the disks recognised as the system's, with why
    skipped: tuple[str, ...] = ()  # other disks not taken, with why
    taken: tuple[dict[str, Any], ...] = ()  # path, model, serial, size, transport, why
    refused: tuple[dict[str, Any], ...] = ()  # every disk not taken, the same with why
    notes: tuple[str, ...] = ()
    foreign_arrays: tuple[str, ...] = field(default=())  # UUIDs of arrays wipe lets it destroy

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(partition_path(d.path) for d in self.disks)


def _exactly(probe: Probe, array: ArrayView, chosen: list[BlockDev], target: Target) -> str:
    """Why fleet's own array is not the one the plan wants on these disks ("" when it is)."""
    members = {partition_path(d.path).rsplit("/", 1)[-1] for d in chosen}
    if set(array.members) != members or array.raid_devices != len(chosen):
        return f"its members are not exactly the first partitions of the {len(chosen)} chosen disks"
    if array.level != target.raid_level:
        return f"it is {array.level}, the plan wants {target.raid_level}"
    return ""


def _array_findings(
    probe: Probe,
    views: list[ArrayView],
    chosen: list[BlockDev],
    target: Target,
    owner: Ownership,
    system: dict[str, str],
) -> tuple[str, dict[str, list[Finding]], list[str]]:
    """(fleet's own array's UUID, findings per disk name, UUIDs of other arrays found)."""
    names = {d.name for d in chosen}
    ours, other = "", []
    per_disk: dict[str, list[Finding]] = {d.name: [] for d in chosen}
    for array in views:
        disks = member_disks(probe, array)
        if not names & set(disks):
            continue
        why_ours = owner.why_ours(array, target.md_name)
        mismatch = _exactly(probe, array, chosen, target) if why_ours else ""
        if why_ours and not mismatch:
            ours = array.uuid
            continue
        other.append(array.uuid)
        what = (
            f"fleet's own {array.describe(probe)}, but {mismatch}"
            if why_ours
            else (f"a member of {array.describe(probe)}, not created by fleet for this host")
        )
        finding = _array_finding(probe, what, disks, system)
        for disk in names & set(disks):
            per_disk[disk].append(finding)
    return ours, per_disk, other


def _array_finding(probe: Probe, what: str, disks: list[str], system: dict[str, str]) -> Finding:
    serials = {d.serial for d in probe.disks if d.name in disks}
    in_system = [d for d in disks if d in system]
    if in_system:
        return Finding(f"{what}; it also uses system disk {in_system[0]}", wipeable=False)
    if any(not s for s in serials):
        return Finding(f"{what}; a member disk has no serial", wipeable=False)
    return Finding(what, needs=frozenset(serials))


def _disk_findings(
    probe: Probe,
    views: list[ArrayView],
    disk: BlockDev,
    target: Target,
    ours: str,
    arrays_found: list[Finding],
) -> tuple[list[Finding], str]:
    """(findings on ``disk``, how it is taken when it has none)."""
    our_names = {v.device.rsplit("/", 1)[-1] for v in views if ours and v.uuid == ours}
    our_names |= {  # the array as lsblk shows it under fleet's own members
        c.name
        for p in disk.partitions
        if ours and (sb := probe.examine.get(p.path)) and sb.uuid == ours
        for c in p.children
        if c.type.startswith("raid")
    }
    out = mount_findings(probe, disk, target.mount, our_names) + arrays_found
    if ours and _in_array(probe, disk, ours):
        return out + _our_content(probe, disk), f"member of fleet's own array UUID {ours}"
    if empty_raid_layout(probe, disk):
        return out, "an empty RAID partition from an interrupted earlier run"
    if empty_stub(probe, disk):
        return out, "carries only OVH's empty 511 MiB stub partition (not data): replaced"
    members = {m for v in views for m in v.members}
    found = content_findings(probe, disk, members)
    return out + found, "" if found or out else "blank"


def _in_array(probe: Probe, disk: BlockDev, uuid: str) -> bool:
    part = partition_path(disk.path)
    sb = probe.examine.get(part)
    return sb is not None and sb.uuid == uuid


def _our_content(probe: Probe, disk: BlockDev) -> list[Finding]:
    """On a member of fleet's own array: anything besides the array is a finding, and so is
    a source that sees something else than the array."""
    if len(disk.partitions) != 1:
        return [Finding(f"has {len(disk.partitions)} partitions besides fleet's own array")]
    return [Finding(t) for n in (disk, *disk.partitions) if (t := disagreement(probe, n))]


def _allowed(disk: BlockDev, findings: list[Finding], wipe: frozenset[str]) -> bool:
    return all(f.wipeable and disk.serial in wipe and f.needs <= wipe for f in findings)


def _refusal(disk: BlockDev, findings: list[Finding], wipe: frozenset[str]) -> str:
    hard = any(not f.wipeable for f in findings)
    missing = sorted({s for f in findings for s in f.needs} - wipe - {disk.serial})
    hint = ""
    if not hard and disk.serial not in wipe:
        hint = f"; {WIPE_HINT}"
        if missing:
            hint += f" (and those of the array's other members: {', '.join(missing)})"
    elif not hard and missing:
        hint = f"; `wipe` must also list {', '.join(missing)} (the array's other members)"
    return f"{disk.describe()}: {'; '.join(f.text for f in findings)}{hint}"


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


def _unused_notes(chosen: list[BlockDev]) -> list[str]:
    smallest = min(d.size for d in chosen)
    return [
        f"{d.path} (serial {d.serial}) is {human(d.size)}: {human(d.size - smallest)} of it stays "
        f"unused (members use the smallest disk's size, {human(smallest)})"
        for d in chosen
        if d.size > smallest
    ]


def guard(
    probe: Probe,
    rule: DiskRule,
    target: Target,
    wipe: frozenset[str],
    owner: Ownership | None = None,
) -> Selection:
    """Choose the disks and refuse anything that would destroy what the plan may not destroy.

    Raises :class:`Refused` naming every refused disk (path, model, serial) and why. A system
    disk, a mounted disk, or a disk in use by a stacked device is refused even when wipe-listed.
    """
    owner = owner or Ownership()
    system, host_problems = identify(probe)
    if host_problems:
        raise Refused(host_problems)
    chosen, others = choose(probe, rule, target.level, system)
    views = arrays(probe)
    ours, by_disk, foreign = _array_findings(probe, views, chosen, target, owner, system)
    reasons: list[str] = []
    taken: list[dict[str, Any]] = []
    wipe_disks: list[BlockDev] = []
    for disk in chosen:
        findings, how = _disk_findings(probe, views, disk, target, ours, by_disk[disk.name])
        if findings and not _allowed(disk, findings, wipe):
            reasons.append(_refusal(disk, findings, wipe))
        elif findings:
            wipe_disks.append(disk)
            destroys = "; ".join(f.text for f in findings)
            taken.append({**disk.record(), "why": f"wipe lists its serial; destroys: {destroys}"})
        else:
            taken.append({**disk.record(), "why": f"{disk.tran or 'local'} disk, {how}"})
    mismatch = _fs_mismatch(chosen, target) if ours else ""
    if mismatch and not all(d.serial in wipe for d in chosen):
        reasons.append(f"{mismatch}; list every member's serial in `wipe` to reformat it")
    if reasons:
        raise Refused(reasons)
    return Selection(
        disks=tuple(chosen),
        existing_uuid=ours,
        wipe_disks=tuple(d.path for d in wipe_disks),
        wiped=tuple(sorted(d.serial for d in wipe_disks)),
        system=tuple(f"{d.describe()}: {system[d.name]}" for d in probe.disks if d.name in system),
        skipped=tuple(f"{d.describe()}: {why}" for d, why in others if d.name not in system),
        taken=tuple(taken),
        refused=tuple({**d.record(), "why": why} for d, why in others),
        notes=tuple(_unused_notes(chosen)),
        foreign_arrays=tuple(u for u in foreign if u),
    )


def decision_digest(selection: Selection, target: Target, extra: dict[str, Any]) -> str:
    """A short hash of what the guard decided to destroy and build, independent of device
    names (which differ between rescue and the installed system): what a preview shows and
    ``--approve`` checks."""
    data = {
        "taken": sorted((d["serial"], d["size"]) for d in selection.taken),
        "wiped": sorted(selection.wiped),
        "existing": selection.existing_uuid,
        "foreign": sorted(selection.foreign_arrays),
        "target": [target.level, target.md_name, target.fs, target.label, target.mount],
        **extra,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
