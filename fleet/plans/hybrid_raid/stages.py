"""The hybrid-raid python stages after ``facts``: ``guard`` (:func:`select`), ``locate`` and
``identify`` (:func:`locate`), ``verify`` and ``verify-again`` (:func:`verify`)."""

from __future__ import annotations

import json
import logging
import secrets
import shlex
from typing import Any

from fleet.plans import disks
from fleet.plans.hybrid_raid.facts import examine_all
from fleet.plans.hybrid_raid.params import Settings, host_settings
from fleet.stages.call import StageContext
from fleet.store.base import OwnedArray

log = logging.getLogger(__name__)

#: Where the rescue system mounts the installed one.
RESCUE_ROOT = "/mnt"


def host_id(ctx: StageContext) -> str:
    """What fleet's array marker names the host by: its OVH service, else its inventory name."""
    return ctx.host.service_name or ctx.host.name


def ownership(ctx: StageContext, settings: Settings) -> disks.Ownership:
    """UUIDs fleet recorded for this host, and the marker it stamps on this plan's array."""
    recorded = frozenset(a.uuid for a in ctx.owned())
    marker = disks.owner_marker(host_id(ctx), settings.md_name, settings.level)
    return disks.Ownership(recorded, marker)


def decisions(sel: disks.Selection) -> dict[str, Any]:
    """What the guard decided, as JSON data kept with the host's record."""
    return {
        "taken": list(sel.taken),
        "refused": list(sel.refused),
        "notes": list(sel.notes),
        "wiped": list(sel.wiped),
        "existing_array": sel.existing_uuid,
    }


def selection_facts(
    settings: Settings, sel: disks.Selection, owner: disks.Ownership, probe: disks.Probe
) -> dict[str, Any]:
    """What the later stages render: every value validated, paths resolved from serials."""
    members = list(sel.members)
    redundant = settings.level != 0
    system = disks.system_disks(probe)
    return {
        "mode": settings.mode, "level": settings.level,
        "raid_level": settings.target.raid_level, "md_name": settings.md_name,
        "md_path": f"/dev/md/{settings.md_name}", "homehost": owner.marker,
        "array_name": f"{owner.marker}:{settings.md_name}", "mount": settings.mount,
        "fs": settings.fs, "label": settings.label,
        "disks": [d.path for d in sel.disks], "serials": [d.serial for d in sel.disks],
        "disk_ids": [f"{d.path}={d.serial}" for d in sel.disks],
        "members": members, "member_count": len(members),
        "expected_bytes": disks.usable_bytes(settings.level, [d.size for d in sel.disks]),
        "create_flags": ["--assume-clean"] if settings.assume_clean and redundant else [],
        "existing_uuid": sel.existing_uuid,
        "format_over": "yes"
        if not sel.existing_uuid or all(d.serial in settings.wipe for d in sel.disks)
        else "no",
        "wipe_disks": list(sel.wipe_disks), "wiped": list(sel.wiped),
        "wiped_arrays": list(sel.foreign_arrays) if sel.wipe_disks else [],
        "system_disks": list(sel.system), "not_chosen": list(sel.skipped),
        "system_arrays": disks.system_arrays(probe, system),
        "root_uuid": disks.installed_root(probe),
        "mkfs": [f"mkfs.{settings.fs}", "-f" if settings.fs == "xfs" else "-F"],
        "root": RESCUE_ROOT if settings.mode == "rescue" else "/",
        "target_dir": (RESCUE_ROOT if settings.mode == "rescue" else "") + settings.mount,
        "notes": settings.notes() + list(sel.notes),
        "decisions": decisions(sel),
        "digest": disks.decision_digest(sel, settings.target, {}),
    }  # fmt: skip


def select(ctx: StageContext) -> dict[str, Any]:
    """Stage ``guard``: choose the disks by rule and refuse the host if any may not be touched."""
    settings = host_settings(ctx)
    raw = ctx.facts.get("probe")
    if not isinstance(raw, dict):
        raise ctx.refuse("no disk facts: the facts stage must run before the guard")
    probe = disks.probe_from(raw)
    owner = ownership(ctx, settings)
    try:
        selection = disks.guard(
            probe, settings.rule, settings.target, frozenset(settings.wipe), owner
        )
    except disks.Refused as exc:
        raise ctx.refuse(exc.message) from exc
    if settings.mode == "rescue" and not selection.existing_uuid and not ctx.preview:
        _need_installed_system(ctx, probe)
    facts = selection_facts(settings, selection, owner, probe)
    _check_approved(ctx, facts["digest"])
    for note in facts["notes"]:
        log.warning("%s: hybrid-raid: %s", ctx.host.name, note)
    return facts


def _check_approved(ctx: StageContext, digest: str) -> None:
    """A run started from an approved preview does only what the preview showed."""
    if ctx.approved is None or ctx.approved == digest:
        return
    if not ctx.approved:
        raise ctx.refuse("the approved preview refused this host or did not include it")
    raise ctx.refuse(
        f"the disks differ from the approved preview (decision {digest}, preview showed "
        f"{ctx.approved}): preview again with `fleet plan --probe` and approve what it shows"
    )


def _need_installed_system(ctx: StageContext, probe: disks.Probe) -> None:
    """In rescue, the persist stage writes into the installed system: it must be found."""
    system = disks.system_disks(probe)
    if not disks.installed_root(probe) and not disks.system_arrays(probe, system):
        raise ctx.refuse(
            "no installed system found in rescue: no /etc/fstab mounting / on any ext "
            "filesystem, and no array on the system disks"
        )


def _our_array(ctx: StageContext) -> tuple[str, str]:
    """(array UUID, /dev/mdN) of the array on our members; refuses when they disagree."""
    members = [str(m) for m in ctx.facts["members"]]
    found = examine_all(ctx, members)
    blocks = {m: disks.parse_examine(found.get(m, "")) for m in members}
    uuids = {sb.uuid for sb in blocks.values() if sb is not None}
    if len(uuids) != 1 or any(sb is None for sb in blocks.values()):
        raise ctx.refuse(
            f"the members {', '.join(members)} do not carry one array: {sorted(uuids)}"
        )
    names = {m.rsplit("/", 1)[-1] for m in members}
    mdstat = disks.parse_mdstat(ctx.must("cat /proc/mdstat").stdout)
    active = [a for a in mdstat if a.active and names & {m.name for m in a.members}]
    if len(active) != 1:
        raise ctx.refuse(f"the array on {', '.join(members)} is not assembled (or twice)")
    return uuids.pop(), f"/dev/{active[0].name}"


def locate(ctx: StageContext) -> dict[str, Any]:
    """Stages ``locate`` and ``identify``: our array's UUID and device, its filesystem's UUID,
    and the exact mdadm.conf and fstab lines the persist stage writes."""
    uuid, device = _our_array(ctx)
    probed = ctx.run(f"blkid -p -o export {shlex.quote(device)}").stdout
    fs = disks.parse_blkid(f"DEVNAME={device}\n" + probed).get(device, {})
    fs_uuid = fs.get("UUID", "") if fs.get("TYPE") == ctx.facts["fs"] else ""
    if ctx.params.get("require_filesystem") and not fs_uuid:
        raise ctx.refuse(f"{device} carries no {ctx.facts['fs']} filesystem after mkfs: {fs}")
    pass_no = 2 if ctx.facts["fs"] == "ext4" else 0
    _record(ctx, uuid, fs_uuid)
    return {
        "array_uuid": uuid,
        "md_device": device,
        "mdadm_line": f"ARRAY {ctx.facts['md_path']} metadata=1.2 UUID={uuid}",
        "fs_uuid": fs_uuid,
        "fstab_line": (
            f"UUID={fs_uuid} {ctx.facts['mount']} {ctx.facts['fs']} defaults,nofail 0 {pass_no}"
            if fs_uuid
            else ""
        ),
    }


def _record(ctx: StageContext, uuid: str, fs_uuid: str) -> None:
    """Keep the array's identity in fleet's store: later runs know it is fleet's own."""
    if ctx.record is None:
        return
    ctx.record(
        OwnedArray(
            host=ctx.host.name,
            uuid=uuid,
            name=str(ctx.facts["array_name"]),
            level=str(ctx.facts["raid_level"]),
            serials=tuple(str(s) for s in ctx.facts["serials"]),
            run_id=ctx.run_id,
            fs_uuid=fs_uuid,
        )
    )


def _check_array(ctx: StageContext) -> str:
    """The array is assembled by UUID, at the level, with every member: returns /dev/mdN."""
    uuid = str(ctx.facts["array_uuid"])
    scan = disks.parse_detail_scan(ctx.must("mdadm --detail --scan").stdout)
    line = next((s for s in scan if s.uuid == uuid), None)
    if line is None or not line.active:
        raise ctx.refuse(f"array UUID {uuid} is not assembled")
    device = ctx.must(f"readlink -f {shlex.quote(line.device)}").stdout.strip()
    mdstat = {a.name: a for a in disks.parse_mdstat(ctx.must("cat /proc/mdstat").stdout)}
    array = mdstat.get(device.rsplit("/", 1)[-1])
    if array is None or not array.active:
        raise ctx.refuse(f"array UUID {uuid} ({device}) is not active in /proc/mdstat")
    if array.level != ctx.facts["raid_level"] or array.degraded:
        raise ctx.refuse(
            f"{device} is {array.level} [{array.status}], expected a healthy {ctx.facts['raid_level']}"
        )
    if len([m for m in array.members if not m.failed]) != ctx.facts["member_count"]:
        raise ctx.refuse(
            f"{device} has {len(array.members)} members, expected {ctx.facts['member_count']}"
        )
    return device


def _check_mount(ctx: StageContext, device: str) -> int:
    """Mounted at the mount point from fstab by filesystem UUID, with the expected size."""
    mount, fs_uuid = str(ctx.facts["mount"]), str(ctx.facts["fs_uuid"])
    cmd = f"findmnt -J -b -o SOURCE,TARGET,FSTYPE,SIZE,UUID,LABEL --mountpoint {shlex.quote(mount)}"
    result = ctx.run(cmd)
    if not result.ok:
        raise ctx.refuse(f"nothing is mounted at {mount}")
    found = json.loads(result.stdout)["filesystems"][0]
    source = ctx.must(f"readlink -f {shlex.quote(str(found['source']))}").stdout.strip()
    if (source, found.get("uuid"), found.get("fstype")) != (device, fs_uuid, ctx.facts["fs"]):
        raise ctx.refuse(
            f"{mount} holds {found}, expected {ctx.facts['fs']} UUID {fs_uuid} on {device}"
        )
    size = int(found.get("size") or 0)
    expected = int(ctx.facts["expected_bytes"])
    if not expected * 0.85 <= size <= expected * 1.01:
        raise ctx.refuse(f"{mount} is {disks.human(size)}, expected about {disks.human(expected)}")
    fstab = ctx.must("cat /etc/fstab").stdout.splitlines()
    if str(ctx.facts["fstab_line"]) not in fstab:
        raise ctx.refuse(f"/etc/fstab lacks the line {ctx.facts['fstab_line']!r}")
    conf = ctx.must("cat /etc/mdadm/mdadm.conf").stdout.splitlines()
    if str(ctx.facts["mdadm_line"]) not in conf:
        raise ctx.refuse(f"/etc/mdadm/mdadm.conf lacks the line {ctx.facts['mdadm_line']!r}")
    return size


def verify(ctx: StageContext) -> dict[str, Any]:
    """Stages ``verify`` and ``verify-again``: healthy array, mounted by UUID at the expected
    size, and a file written and read back through the filesystem."""
    if ctx.mode != "disk":
        raise ctx.refuse(f"verification needs the installed system, the host is in {ctx.mode}")
    device = _check_array(ctx)
    size = _check_mount(ctx, device)
    token = secrets.token_hex(16)
    path = shlex.quote(f"{ctx.facts['mount']}/.fleet-hybrid-raid-check")
    back = ctx.must(f"printf %s {token} > {path} && sync {path} && cat {path} && rm -f {path}")
    if back.stdout.strip() != token:
        raise ctx.refuse(f"wrote {token} to {path} and read back {back.stdout.strip()[:40]!r}")
    return {"verified_device": device, "verified_bytes": size}
