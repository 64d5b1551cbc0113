"""Which disks the rule takes: local rotational disks on an allowed transport, not the
system's, then the operator's filters (size, model, count).

Some devices are never taken, whatever the rule: removable media, BMC virtual media, zero-size
and read-only devices. Transports other than SATA, SAS and NVMe (USB, iSCSI, Fibre Channel,
virtio, none reported) are taken only when ``transport=`` names them.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from fleet.errors import PayloadError
from fleet.plans.disks.lsblk import BlockDev, human
from fleet.plans.disks.probe import Probe

#: Transports taken by default: local disks.
DEFAULT_TRANSPORTS = ("sata", "sas", "nvme")
#: Minimum number of member disks per RAID level.
MIN_DISKS = {0: 2, 1: 2, 5: 3, 6: 4, 10: 4}
#: What BMCs call the disks and drives they present over USB (AMI, ATEN, iDRAC, iLO...).
VIRTUAL_MEDIA = re.compile(
    r"virtual\s*(hdisk|h?disk\s*\d|cd|dvd|floppy|media|usb|drive)|vkvm|idrac|\bilo\b", re.I
)


class Refused(PayloadError):
    """The guard refuses the host; ``reasons`` name each disk and why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class DiskRule:
    """Which disks to build on: local rotational disks, not the system's, and these filters."""

    min_size: int | None = None
    max_size: int | None = None
    model: str | None = None  # fnmatch glob on the model, case-insensitive
    count: int | None = None
    transports: tuple[str, ...] = DEFAULT_TRANSPORTS


def never_taken(disk: BlockDev) -> str:
    """Why ``disk`` can never be part of the array, whatever the rule; "" when it can."""
    if disk.size == 0:
        return "has no media (size 0)"
    if disk.read_only:
        return "read-only device"
    text = f"{disk.vendor} {disk.model}".strip()
    if VIRTUAL_MEDIA.search(text) or (disk.on_usb and "virtual" in text.lower()):
        return f"BMC virtual media ({text})"
    if disk.removable:
        bus = "USB " if disk.on_usb else ""
        return f"removable {bus}medium (lsblk RM=1): never taken"
    return ""


def transport_miss(disk: BlockDev, rule: DiskRule) -> str:
    """Why the transport rules out ``disk``; "" when it is allowed."""
    tran = "usb" if disk.on_usb else disk.tran
    if tran in rule.transports:
        return ""
    allowed = ", ".join(rule.transports)
    what = f"on transport {tran}" if tran else "with no transport reported (not a local disk)"
    return f"{what}: the rule takes {allowed} disks only (`transport=` widens it)"


def rule_miss(disk: BlockDev, rule: DiskRule) -> str:
    """Why the rule does not choose a disk that may be taken; "" when it does."""
    if not disk.rota:
        return "solid-state: the plan builds the array of rotational disks (HDDs)"
    if rule.min_size is not None and disk.size < rule.min_size:
        return f"smaller than min_size {human(rule.min_size)}"
    if rule.max_size is not None and disk.size > rule.max_size:
        return f"larger than max_size {human(rule.max_size)}"
    if rule.model and not fnmatch.fnmatch(disk.model.lower(), rule.model.lower()):
        return f"model does not match {rule.model!r}"
    return ""


def verdict(disk: BlockDev, rule: DiskRule, system: dict[str, str]) -> str:
    """Why ``disk`` is not chosen ("" when it is): system, never taken, transport, rule."""
    if disk.name in system:
        return f"system disk: {system[disk.name]}"
    return never_taken(disk) or transport_miss(disk, rule) or rule_miss(disk, rule)


def choose(
    probe: Probe, rule: DiskRule, level: int, system: dict[str, str]
) -> tuple[list[BlockDev], list[tuple[BlockDev, str]]]:
    """(chosen disks by serial, every other disk with why). Refuses a count that does not fit."""
    chosen: list[BlockDev] = []
    others: list[tuple[BlockDev, str]] = []
    for disk in probe.disks:
        why = verdict(disk, rule, system)
        if why:
            others.append((disk, why))
        else:
            chosen.append(disk)
    chosen.sort(key=lambda d: (d.serial, d.path))
    _check_count(chosen, rule, level, others)
    return chosen, others


def _check_count(
    chosen: list[BlockDev], rule: DiskRule, level: int, others: list[tuple[BlockDev, str]]
) -> None:
    names = ", ".join(d.describe() for d in chosen) or "none"
    not_chosen = "; ".join(f"{d.describe()}: {why}" for d, why in others)
    tail = f" (not taken: {not_chosen})" if not_chosen else ""
    if rule.count is not None and len(chosen) != rule.count:
        raise Refused(
            [f"the disk rule wants {rule.count} disks and matches {len(chosen)}: {names}{tail}"]
        )
    need = MIN_DISKS[level]
    if len(chosen) < need:
        raise Refused(
            [f"RAID{level} needs at least {need} disks and the rule matches {len(chosen)}: "
             f"{names}{tail}"]
        )  # fmt: skip
    if len({d.serial for d in chosen}) != len(chosen) or not all(d.serial for d in chosen):
        raise Refused([f"the chosen disks need distinct serials to be told apart: {names}"])
