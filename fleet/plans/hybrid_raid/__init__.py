"""The built-in plan ``hybrid-raid``: the HDD group of an OVH hybrid server as an mdadm array.

The seed's procedure (partition the HDDs, ``mdadm --create``, mkfs, mdadm.conf, initramfs,
fstab, reboot) made safe to run on many servers at once:

* through OVH's rescue system by default (``mode=rescue``), or on the running installed
  system as in the seed (``mode=live``);
* disks chosen by rule (local rotational disks on SATA, SAS or NVMe, never removable or
  virtual media, never the system's; size/model/count) and guarded: a disk holding anything is
  refused unless ``wipe`` names its serial (see :mod:`fleet.plans.disks`);
* arrays judged by identity: fleet marks the array it creates (homehost ``fleet-<hash of host
  and parameters>``) and records its UUID; any other array is foreign and refused, named with
  its UUID, level, members and state, unless ``wipe`` lists every member's serial;
* every destructive step first re-checks each disk's serial, and has a read-only check so a
  re-run or a resume converges instead of repeating it; a wipe is done only when the disks are
  blank (udev held off while arrays are stopped, superblocks zeroed, signatures erased);
* the array is found by UUID and mounted from fstab by filesystem UUID, never by ``/dev/mdN``
  whose number changes between the rescue and the installed system.

Parameters (``--var NAME=VALUE``; a host's inventory vars of the same names override them and
are validated when the host is reached): ``level`` (0, 1, 5, 6, 10; default 1), ``mount``
(/opt), ``fs`` (ext4, xfs), ``label`` (data), ``md_name`` (md4), ``mode`` (rescue, live),
``reboot`` (auto, ovh, ssh), ``assume_clean`` (false), ``wipe`` (serials, comma-separated),
``min_size`` / ``max_size`` (``4T``, ``500GB``, ``3.6TiB``, bytes), ``model`` (glob),
``count``, ``transport`` (default sata,sas,nvme).
"""

from __future__ import annotations

import logging
from typing import Any

from fleet.plan import Plan, parse_plan
from fleet.plans.hybrid_raid import shell
from fleet.plans.hybrid_raid.facts import gather
from fleet.plans.hybrid_raid.params import PARAMS, Settings, parse_size, settings_from
from fleet.plans.hybrid_raid.stages import locate, select, selection_facts, verify

__all__ = [
    "PARAMS", "Settings", "gather", "hybrid_raid", "locate", "parse_size", "plan_data",
    "select", "selection_facts", "settings_from", "verify",
]  # fmt: skip

log = logging.getLogger(__name__)

RESCUE = {"mode": "rescue"}
#: Read-only stages that ``fleet plan --probe`` runs to show what the guard would decide.
PREVIEW = {"preview": True}
LIVE = {"mode": "live"}
_CALL = "fleet.plans.hybrid_raid:"


def _step(name: str, apply: str, check: str | None = None, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "apply": apply, **extra}
    if check is not None:
        step["check"] = check
    return step


def _disk_stages() -> list[dict[str, Any]]:
    s = shell
    return [
        {"name": "wipe", "steps": [
            _step("wipe listed disks", s.WIPE, s.BLANK, verify=s.BLANK, destructive=True),
        ]},
        {"name": "partition", "steps": [
            _step("partition", s.PARTITION, s.LAYOUT, verify=f"{s.LAYOUT} && {s.ALIGNED}",
                  destructive=True),
        ]},
        {"name": "array", "steps": [
            _step("create", s.CREATE, s.ARRAY_EXISTS,
                  verify=f"{s.ARRAY_EXISTS}\n{s.ASSEMBLED}", destructive=True),
            _step("assemble", s.ASSEMBLE, s.ASSEMBLED, verify=s.ASSEMBLED),
        ]},
        {"name": "locate", "kind": "python", "call": _CALL + "locate"},
        {"name": "filesystem", "steps": [
            _step("mkfs", s.MKFS, s.FS_OK, verify=s.FS_OK, destructive=True, timeout=3600),
        ]},
        {"name": "identify", "kind": "python", "call": _CALL + "locate",
         "params": {"require_filesystem": True}},
    ]  # fmt: skip


def _persist_stage() -> dict[str, Any]:
    s = shell
    return {"name": "persist", "steps": [
        _step("mount the installed system", s.MOUNT_ROOT, s.MOUNT_ROOT_OK, verify=s.MOUNT_ROOT_OK,
              when=RESCUE),
        _step("mdadm.conf ARRAY line", s.MDADM_CONF, s.MDADM_CONF_OK, verify=s.MDADM_CONF_OK),
        _step("fstab line", s.FSTAB_WRITE, s.FSTAB_OK, verify=s.FSTAB_OK),
        _step("mount point", s.MOUNT_POINT, s.MOUNT_POINT_OK, verify=s.MOUNT_POINT_OK),
        _step("update-initramfs", s.INITRAMFS, s.INITRAMFS_OK, verify=s.INITRAMFS_OK,
              timeout=1800),
        _step("mount now", s.LIVE_MOUNT, s.LIVE_MOUNTED, verify=s.LIVE_MOUNTED, when=LIVE),
        _step("unmount the installed system", s.UNMOUNT, s.UNMOUNTED, verify=s.UNMOUNTED,
              when=RESCUE),
    ]}  # fmt: skip


def plan_data(settings: Settings) -> dict[str, Any]:
    """The plan as plain data (what ``parse_plan`` validates)."""
    notes = settings.notes()
    return {
        "name": "hybrid-raid",
        "description": "the HDD group as an mdadm array, mounted by UUID"
        + "".join(f"; warning: {n}" for n in notes),
        "vars": settings.plan_vars(),
        "converged": shell.CONVERGED,
        "stages": [
            {"name": "rescue", "kind": "rescue", "when": RESCUE},
            {"name": "facts", "kind": "python", "call": _CALL + "gather", "params": PREVIEW},
            {"name": "guard", "kind": "python", "call": _CALL + "select", "params": PREVIEW},
            *_disk_stages(),
            _persist_stage(),
            {"name": "disk", "kind": "disk", "when": RESCUE},
            {"name": "verify", "kind": "python", "call": _CALL + "verify"},
            {"name": "reboot", "kind": "reboot", "params": {"how": settings.reboot}},
            {"name": "verify-again", "kind": "python", "call": _CALL + "verify"},
        ],
    }


def hybrid_raid(params: dict[str, Any]) -> Plan:
    """``builtin:hybrid-raid``: validate the ``--var`` parameters and build the plan."""
    settings = settings_from(params)
    for note in settings.notes():
        log.warning("hybrid-raid: %s", note)
    return parse_plan(plan_data(settings), "builtin:hybrid-raid")
