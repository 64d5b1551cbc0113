"""The ``facts`` stage: read the disks, arrays and installed system, read-only.

It returns the raw outputs (the guard parses them with :func:`fleet.plans.disks.probe_from`),
so the journal keeps what the host looked like when fleet decided. Nothing here writes: lsblk,
``mdadm --examine``, ``blkid -p``, ``wipefs -n``, sysfs, ``/proc``, findmnt, ``pvs``, and
``debugfs -R 'cat /etc/fstab'`` (read-only, no mount) on each ext filesystem to find the
installed system's own ``/etc/fstab`` in rescue.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from fleet.plans import disks
from fleet.plans.hybrid_raid.params import Settings, host_settings
from fleet.stages.call import StageContext

if TYPE_CHECKING:
    from fleet.provider.base import Hardware

_TOOLS = ("lsblk", "blkid", "mdadm", "parted", "wipefs", "findmnt", "mountpoint", "udevadm")
_RESCUE_TOOLS = ("debugfs", "findfs")
#: Filesystems whose /etc/fstab the facts stage reads (debugfs: ext2/3/4 only, no mount), and
#: md members whose data starts at offset 0 (0.90 and 1.0 superblocks sit at the end).
_FSTAB_TYPES = ("ext2", "ext3", "ext4", "linux_raid_member")
#: Read /etc/fstab out of each filesystem given as "$@", read-only (no mount, no journal replay).
_READ_FSTABS = (
    'for d in "$@"; do t=$(debugfs -R "cat /etc/fstab" "$d" 2>/dev/null) || continue; '
    '[ -n "$t" ] || continue; echo "@@fstab $d"; echo "$t"; done; true'
)
_PVS = "pvs --reportformat json -o pv_name,vg_name 2>/dev/null || true"


def mode_check(ctx: StageContext, settings: Settings) -> None:
    """Prove the host is where the mode says: rescue, or the installed system for live."""
    name = ctx.must("hostname").stdout.strip()
    in_rescue = name.startswith("rescue")
    if settings.mode == "rescue" and not (in_rescue and ctx.mode == "rescue"):
        raise ctx.refuse(f"mode=rescue but the host is not in rescue (hostname {name!r})")
    if settings.mode == "live" and in_rescue:
        raise ctx.refuse(f"mode=live but the host runs a rescue system (hostname {name!r})")


def _mount_point_free(ctx: StageContext, mount: str) -> None:
    """Live mode: mounting the array must not hide files already in the mount point."""
    d = shlex.quote(mount)
    if not ctx.run(f'[ ! -d {d} ] || mountpoint -q {d} || [ -z "$(ls -A {d})" ]').ok:
        raise ctx.refuse(f"{mount} is not empty: mounting the array over it would hide its files")


def _with_args(script: str, paths: list[str]) -> str:
    return "set -- " + " ".join(shlex.quote(p) for p in paths) + "; " + script


def examine_all(ctx: StageContext, paths: list[str]) -> dict[str, str]:
    """``mdadm --examine --export`` of each path, in one round trip."""
    script = "for d in " + " ".join(shlex.quote(p) for p in paths) + "; do "
    script += 'echo "@@ $d"; mdadm --examine --export "$d" 2>/dev/null; done; true'
    out: dict[str, str] = {}
    current: str | None = None
    for line in ctx.must(script).stdout.splitlines():
        if line.startswith("@@ "):
            current = line[3:]
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return {p: text for p, text in out.items() if text.strip()}


def _fstab_candidates(devices: tuple[disks.BlockDev, ...]) -> list[str]:
    """Unmounted ext filesystems and md members anywhere in the trees, once each."""
    found: dict[str, None] = {}
    for dev in devices:
        for node in dev.walk():
            if node.fstype in _FSTAB_TYPES and not node.mountpoints and node.type != "disk":
                found[node.path] = None
    return list(found)


def _missing_tools(ctx: StageContext, settings: Settings) -> list[str]:
    tools = [*_TOOLS, f"mkfs.{settings.fs}"]
    if settings.mode == "rescue":
        tools += _RESCUE_TOOLS
    check = "for t in " + " ".join(tools) + "; do command -v $t >/dev/null 2>&1 || echo $t; done"
    return ctx.must(check).stdout.split()


def read_probe(ctx: StageContext, live: bool) -> dict[str, Any]:
    """Every read-only source, raw: what :func:`fleet.plans.disks.probe_from` parses."""
    ctx.run("udevadm settle --timeout=30 2>/dev/null")  # lsblk reads udev's database
    lsblk = ctx.must(disks.LSBLK).stdout
    devices = disks.parse_lsblk(lsblk)
    paths = [n.path for d in devices if d.type == "disk" for n in (d, *d.partitions)]
    installed = ctx.run(_with_args(_READ_FSTABS, _fstab_candidates(devices)), 300).stdout
    if live:
        installed += "@@fstab (running system)\n" + ctx.run("cat /etc/fstab").stdout
    return {
        "lsblk": lsblk,
        "mdstat": ctx.run("cat /proc/mdstat 2>/dev/null").stdout,
        "scan": ctx.run("mdadm --detail --scan 2>/dev/null").stdout,
        "devices": ctx.must(_with_args(disks.DEVICE_PROBE, paths), 300).stdout,
        "blkid": ctx.run("blkid -o export").stdout,
        "swaps": ctx.run("cat /proc/swaps 2>/dev/null").stdout,
        "findmnt": ctx.run("findmnt -J -l -o SOURCE,TARGET").stdout,
        "pvs": ctx.run(_PVS).stdout,
        "installed": installed,
        "live": live,
    }


def _kind(disk_type: str) -> str:
    """OVH's free-text ``diskType`` as NVME, SSD or HDD ("" when unknown)."""
    text = disk_type.upper()
    if "NVME" in text:
        return "NVME"
    if "SSD" in text:
        return "SSD"
    return "HDD" if any(t in text for t in ("HDD", "SATA", "SAS")) else ""


def spec_from(hardware: Hardware | None) -> disks.SystemSpec | None:
    """OVH's system disk group (``defaultDiskGroupId``) and the other groups."""
    system = hardware.system_group if hardware else None
    if hardware is None or system is None or not _kind(system.disk_type):
        return None
    others = tuple(
        (_kind(g.disk_type), g.count, g.size_gb)
        for g in hardware.disk_groups
        if g.id != system.id and _kind(g.disk_type)
    )
    return disks.SystemSpec((_kind(system.disk_type), system.count, system.size_gb), others)


def gather(ctx: StageContext) -> dict[str, Any]:
    """Stage ``facts``: prove the mode, check the tools, read every source read-only. Returns
    the raw outputs (with OVH's hardware specification when the host has an ``ovh_service``)
    and the disks seen. Run by ``fleet plan --probe``, it reads whatever system the host runs."""
    settings = host_settings(ctx)
    in_rescue = ctx.must("hostname").stdout.strip().startswith("rescue")
    if not ctx.preview:
        mode_check(ctx, settings)
    missing = _missing_tools(ctx, settings)
    if missing:
        raise ctx.refuse(f"missing tools on the host: {', '.join(missing)}")
    if settings.mode == "live" and not in_rescue:
        _mount_point_free(ctx, settings.mount)
    probe = read_probe(ctx, not in_rescue)
    spec = spec_from(ctx.hardware())
    if spec is not None:
        probe["spec"] = spec.to_json()
    seen = [d.describe() for d in disks.parse_lsblk(probe["lsblk"]) if d.type == "disk"]
    return {"probe": probe, "disks_seen": seen}
