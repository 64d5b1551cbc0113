"""The built-in plan ``hybrid-raid``: the HDD group of an OVH hybrid server as an mdadm array.

The seed's procedure (partition the HDDs, ``mdadm --create``, mkfs, mdadm.conf, initramfs,
fstab, reboot) made safe to run on many servers at once:

* through OVH's rescue system by default (``mode=rescue``), or on the running installed
  system as in the seed (``mode=live``);
* disks chosen by rule (rotational, not the system's, size/model/count) and guarded: a disk
  holding anything is refused unless ``wipe`` names its serial (see :mod:`fleet.plans.disks`);
* every destructive step first re-checks each disk's serial, and has a read-only check so a
  re-run or a resume converges instead of repeating it;
* the array is found by UUID, created with an explicit name and homehost (a rescue system would
  otherwise stamp its own hostname on it), and mounted from fstab by filesystem UUID, never by
  ``/dev/mdN`` whose number changes between the rescue and the installed system.

Parameters (``--var NAME=VALUE``; a host's inventory vars of the same names override them and
are validated when the host is reached): ``level`` (0, 1, 5, 6, 10; default 1), ``mount``
(/opt), ``fs`` (ext4, xfs), ``label`` (data), ``md_name`` (md4), ``homehost`` (``<none>``:
the array is named plainly ``md4``, like OVH's own arrays), ``mode`` (rescue, live),
``assume_clean`` (false), ``wipe`` (serials, comma-separated), ``min_size`` / ``max_size``
(``4T``, ``500GB``, ``3.6TiB``, bytes), ``model`` (glob), ``count``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.errors import UsageError
from fleet.plan import Plan, parse_plan
from fleet.plans import disks
from fleet.stages.call import StageContext

log = logging.getLogger(__name__)

PARAMS = (
    "level", "mount", "fs", "label", "md_name", "homehost", "mode", "assume_clean", "wipe",
    "min_size", "max_size", "model", "count",
)  # fmt: skip
LEVELS = (0, 1, 5, 6, 10)
FILESYSTEMS = {"ext4": 16, "xfs": 12}  # filesystem -> longest label
#: Where the rescue system mounts the installed one.
RESCUE_ROOT = "/mnt"
#: Written into the installed system after update-initramfs: the hash of the mdadm.conf it saw.
INITRAMFS_STAMP = "/var/lib/fleet/hybrid-raid.initramfs"
_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGTP]?)(i?)(B?)\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}$")  # never a leading '-' (an option)
_HOSTNAME = re.compile(r"^(<none>|[A-Za-z0-9][A-Za-z0-9.-]{0,62})$")
_MOUNT = re.compile(r"^(/[A-Za-z0-9_.@+-]+)+$")
_FORBIDDEN_MOUNTS = ("/boot", "/dev", "/etc", "/proc", "/run", "/sys", "/usr", "/var", "/tmp")


@dataclass(frozen=True)
class Settings:
    """The plan's parameters, validated."""

    level: int = 1
    mount: str = "/opt"
    fs: str = "ext4"
    label: str = "data"
    md_name: str = "md4"
    homehost: str = "<none>"
    mode: str = "rescue"
    assume_clean: bool = False
    wipe: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    model: str | None = None
    count: int | None = None

    @property
    def target(self) -> disks.Target:
        return disks.Target(self.level, self.md_name, self.mount, self.fs, self.label)

    @property
    def rule(self) -> disks.DiskRule:
        return disks.DiskRule(self.min_size, self.max_size, self.model, self.count)

    def plan_vars(self) -> dict[str, Any]:
        """As plan vars: only JSON scalars and lists, unset filters left out."""
        out: dict[str, Any] = {
            "level": self.level, "mount": self.mount, "fs": self.fs, "label": self.label,
            "md_name": self.md_name, "homehost": self.homehost, "mode": self.mode,
            "assume_clean": self.assume_clean, "wipe": list(self.wipe),
        }  # fmt: skip
        for name in ("min_size", "max_size", "model", "count"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def notes(self) -> list[str]:
        """Warnings an operator should read before running the plan."""
        out = []
        if self.assume_clean and self.level == 0:
            out.append("assume_clean means nothing for RAID0 (no redundancy to sync): ignored")
        elif self.assume_clean:
            out.append(
                f"assume_clean: the RAID{self.level} array is not synced after creation; its "
                "redundancy is only right if the disks were blank (zeroed)"
            )
        if self.wipe:
            out.append(
                "wipe allows destroying the data on disks with serials " + ", ".join(self.wipe)
            )
        return out


# ---------------------------------------------------------------------------------------------
# Parameters


def parse_size(text: str, name: str) -> int:
    """``4T``/``4TB`` (decimal), ``3.6TiB`` (binary), or bytes."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{name}={text!r}: expected a size like 4T, 500GB, 3.6TiB or bytes")
    number, unit, binary, _ = match.groups()
    base = 1024 if binary else 1000
    power = "KMGTP".find(unit.upper()) + 1 if unit else 0
    try:
        return int(float(number) * base**power)
    except ValueError:
        raise UsageError(f"{name}={text!r}: {number!r} is not a number") from None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{name}={value!r}: expected true or false")


def _int(value: Any, name: str, allowed: tuple[int, ...] | None = None) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UsageError(f"{name}={value!r}: expected a whole number") from None
    if allowed is not None and number not in allowed:
        raise UsageError(f"{name}={value!r}: expected one of {', '.join(map(str, allowed))}")
    if allowed is None and number < 1:
        raise UsageError(f"{name}={value!r}: expected at least 1")
    return number


def _serials(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else re.split(r"[,\s]+", str(value))
    return tuple(s for s in (str(i).strip() for i in items) if s)


def _mount(value: Any) -> str:
    text = str(value).strip()
    if text.strip("/") == "" and text:
        raise UsageError(f"mount={value!r}: that is a system directory")
    text = text.rstrip("/")
    if not text.startswith("/"):
        raise UsageError(f"mount={value!r}: the mount point must be an absolute path")
    if not _MOUNT.match(text) or "/." in text:
        raise UsageError(
            f"mount={value!r}: use letters, digits and _.@+- between slashes, no . or .. parts"
        )
    if any(text == m or text.startswith(m + "/") for m in _FORBIDDEN_MOUNTS):
        raise UsageError(f"mount={value!r}: that is a system directory")
    return text


def _text_params(values: Mapping[str, Any], fs: str) -> dict[str, Any]:
    label = str(values.get("label", "data"))
    if not _NAME.match(label) or len(label) > FILESYSTEMS[fs]:
        raise UsageError(
            f"label={label!r}: at most {FILESYSTEMS[fs]} characters for {fs}, letters, digits, "
            "_.- (not first: -)"
        )
    md_name = str(values.get("md_name", "md4"))
    if not _NAME.match(md_name):
        raise UsageError(f"md_name={md_name!r}: 1-32 letters, digits and _.- (not first: -)")
    homehost = str(values.get("homehost", "<none>"))
    if not _HOSTNAME.match(homehost):
        raise UsageError(f"homehost={homehost!r}: a host name, or <none> for a plain name")
    mode = str(values.get("mode", "rescue"))
    if mode not in ("rescue", "live"):
        raise UsageError(f"mode={mode!r}: expected rescue or live")
    model = values.get("model")
    return {"label": label, "md_name": md_name, "homehost": homehost, "mode": mode,
            "model": str(model) if model not in (None, "") else None}  # fmt: skip


def settings_from(values: Mapping[str, Any]) -> Settings:
    """Validate parameters (strings from ``--var``, or typed values from inventory vars)."""
    unknown = sorted(set(values) - set(PARAMS))
    if unknown:
        raise UsageError(
            f"hybrid-raid has no parameter {', '.join(unknown)}",
            hint="parameters: " + ", ".join(PARAMS),
        )
    fs = str(values.get("fs", "ext4"))
    if fs not in FILESYSTEMS:
        raise UsageError(f"fs={fs!r}: expected ext4 or xfs")

    def size(name: str) -> int | None:
        value = values.get(name)
        return None if value in (None, "") else parse_size(str(value), name)

    count = values.get("count")
    settings = Settings(
        level=_int(values.get("level", 1), "level", LEVELS),
        mount=_mount(values.get("mount", "/opt")),
        fs=fs,
        assume_clean=_bool(values.get("assume_clean", False), "assume_clean"),
        wipe=_serials(values.get("wipe", ())),
        min_size=size("min_size"),
        max_size=size("max_size"),
        count=None if count in (None, "") else _int(count, "count"),
        **_text_params(values, fs),
    )
    if settings.count is not None and settings.count < disks.MIN_DISKS[settings.level]:
        need = disks.MIN_DISKS[settings.level]
        raise UsageError(
            f"count={settings.count}: RAID{settings.level} needs at least {need} disks"
        )
    if settings.min_size and settings.max_size and settings.min_size > settings.max_size:
        raise UsageError("min_size is larger than max_size")
    return settings


def host_settings(ctx: StageContext) -> Settings:
    """The plan's parameters with this host's inventory vars of the same names applied."""
    values = {k: v for k, v in ctx.vars.items() if k in PARAMS}
    try:
        return settings_from(values)
    except UsageError as exc:
        raise ctx.refuse(f"bad hybrid-raid parameter for this host: {exc.message}") from exc


# ---------------------------------------------------------------------------------------------
# Python stages: facts, guard, locate, verify


def _mode_check(ctx: StageContext, settings: Settings) -> None:
    """Prove the host is where the mode says: rescue, or the installed system for live."""
    name = ctx.must("hostname").stdout.strip()
    in_rescue = name.startswith("rescue")
    if settings.mode == "rescue" and not (in_rescue and ctx.mode == "rescue"):
        raise ctx.refuse(f"mode=rescue but the host is not in rescue (hostname {name!r})")
    if settings.mode == "live" and in_rescue:
        raise ctx.refuse(f"mode=live but the host runs a rescue system (hostname {name!r})")


LSBLK = "lsblk -J -b -o NAME,PATH,SIZE,TYPE,ROTA,TRAN,MODEL,SERIAL,FSTYPE,LABEL,UUID,PARTTYPE,MOUNTPOINT,PKNAME"
_TOOLS = ("lsblk", "blkid", "mdadm", "parted", "wipefs", "findmnt", "mountpoint")


def _examine_all(ctx: StageContext, paths: list[str]) -> dict[str, str]:
    """``mdadm --examine --export`` of every disk and partition, in one round trip."""
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


def _mount_point_free(ctx: StageContext, mount: str) -> None:
    """Live mode: mounting the array must not hide files already in the mount point."""
    d = shlex.quote(mount)
    if not ctx.run(f'[ ! -d {d} ] || mountpoint -q {d} || [ -z "$(ls -A {d})" ]').ok:
        raise ctx.refuse(f"{mount} is not empty: mounting the array over it would hide its files")


def gather(ctx: StageContext) -> dict[str, Any]:
    """Stage ``facts``: read the disks and arrays, read-only. Returns the raw outputs (the
    guard parses them, and the journal keeps what the host looked like when it decided)."""
    settings = host_settings(ctx)
    _mode_check(ctx, settings)
    tools = (*_TOOLS, f"mkfs.{settings.fs}")
    missing = ctx.must(
        "for t in " + " ".join(tools) + "; do command -v $t >/dev/null 2>&1 || echo $t; done"
    ).stdout.split()
    if missing:
        raise ctx.refuse(f"missing tools on the host: {', '.join(missing)}")
    if settings.mode == "live":
        _mount_point_free(ctx, settings.mount)
    lsblk = ctx.must(LSBLK).stdout
    devices = disks.parse_lsblk(lsblk)
    paths = [n.path for d in devices if d.type == "disk" for n in (d, *d.partitions)]
    probe = {
        "lsblk": lsblk,
        "mdstat": ctx.run("cat /proc/mdstat 2>/dev/null").stdout,
        "scan": ctx.run("mdadm --detail --scan 2>/dev/null").stdout,
        "examine": _examine_all(ctx, paths),
        "blkid": ctx.run("blkid -o export").stdout,
    }
    seen = [d.describe() for d in devices if d.type == "disk"]
    return {"probe": probe, "disks_seen": seen}


def probe_from(raw: Mapping[str, Any]) -> disks.Probe:
    """Parse the facts stage's raw outputs."""
    examine = {
        path: sb
        for path, text in dict(raw.get("examine") or {}).items()
        if (sb := disks.parse_examine(str(text))) is not None
    }
    return disks.Probe(
        devices=disks.parse_lsblk(str(raw["lsblk"])),
        mdstat=disks.parse_mdstat(str(raw.get("mdstat") or "")),
        scan=disks.parse_detail_scan(str(raw.get("scan") or "")),
        examine=examine,
        blkid=disks.parse_blkid(str(raw.get("blkid") or "")),
    )


def selection_facts(settings: Settings, sel: disks.Selection) -> dict[str, Any]:
    """What the later stages render: every value validated, paths resolved from serials."""
    members = list(sel.members)
    redundant = settings.level != 0
    return {
        "mode": settings.mode,
        "level": settings.level,
        "raid_level": settings.target.raid_level,
        "md_name": settings.md_name,
        "md_path": f"/dev/md/{settings.md_name}",
        "homehost": settings.homehost,
        "mount": settings.mount,
        "fs": settings.fs,
        "label": settings.label,
        "disks": [d.path for d in sel.disks],
        "serials": [d.serial for d in sel.disks],
        "disk_ids": [f"{d.path}={d.serial}" for d in sel.disks],
        "members": members,
        "member_count": len(members),
        "expected_bytes": disks.usable_bytes(settings.level, [d.size for d in sel.disks]),
        "create_flags": ["--assume-clean"] if settings.assume_clean and redundant else [],
        "existing_uuid": sel.existing_uuid,
        "format_over": "yes"
        if not sel.existing_uuid or all(d.serial in settings.wipe for d in sel.disks)
        else "no",
        "stop_arrays": list(sel.stop_arrays),
        "wiped": list(sel.wiped),
        "system_disks": list(sel.system),
        "not_chosen": list(sel.skipped),
        "mkfs": [f"mkfs.{settings.fs}", "-f" if settings.fs == "xfs" else "-F"],
        "root": RESCUE_ROOT if settings.mode == "rescue" else "/",
        "target_dir": (RESCUE_ROOT if settings.mode == "rescue" else "") + settings.mount,
        "notes": settings.notes(),
    }


def select(ctx: StageContext) -> dict[str, Any]:
    """Stage ``guard``: choose the disks by rule and refuse the host if any may not be touched."""
    settings = host_settings(ctx)
    raw = ctx.facts.get("probe")
    if not isinstance(raw, dict):
        raise ctx.refuse("no disk facts: the facts stage must run before the guard")
    try:
        selection = disks.guard(
            probe_from(raw), settings.rule, settings.target, frozenset(settings.wipe)
        )
    except disks.Refused as exc:
        raise ctx.refuse(exc.message) from exc
    facts = selection_facts(settings, selection)
    for note in facts["notes"]:
        log.warning("%s: hybrid-raid: %s", ctx.host.name, note)
    return facts


def _our_array(ctx: StageContext) -> tuple[str, str]:
    """(array UUID, /dev/mdN) of the array on our members; refuses when they disagree."""
    members = [str(m) for m in ctx.facts["members"]]
    found = _examine_all(ctx, members)
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


# ---------------------------------------------------------------------------------------------
# The plan. Commands use only ``facts.*`` values (validated per host by the guard) and plan
# vars for the plan-level ``converged`` check; every value arrives shell-quoted.

#: Before anything destructive: each disk path still is the disk with the serial the guard saw.
IDENTITY = (
    "for pair in {{ facts.disk_ids }}; do d=${pair%%=*}; s=${pair#*=}; "
    '[ "$(lsblk -dno SERIAL "$d" 2>/dev/null | sed \'s/^ *//;s/ *$//\')" = "$s" ] || '
    '{ echo "$d is not the disk with serial $s: refusing" >&2; exit 1; }; done'
)
#: One GPT partition with the raid flag on every disk (parted -m: disk line, then partitions).
LAYOUT = (
    'for d in {{ facts.disks }}; do parted -s -m "$d" unit s print 2>/dev/null | '
    'awk -F: \'NR==2 && $6!="gpt" {bad=1} NR>2 {n++; if ($7 !~ /raid/) bad=1} '
    "END {exit (bad || n!=1)}' || exit 1; done"
)
PARTITION = (
    "set -e; " + IDENTITY + "\n"
    "for d in {{ facts.disks }}; do\n"
    '  for p in $(lsblk -lnpo NAME,TYPE "$d" | awk \'$2=="part" {print $1}\'); do wipefs -a "$p"; done\n'
    '  wipefs -a "$d"\n'
    '  parted -s -a optimal "$d" mklabel gpt mkpart primary 0% 100% set 1 raid on\n'
    "done\n"
    "udevadm settle 2>/dev/null || true\n"
    'for m in {{ facts.members }}; do i=0; while [ ! -b "$m" ] && [ $i -lt 40 ]; do sleep 0.5; '
    'i=$((i+1)); done; wipefs -a "$m"; done'
)
ALIGNED = 'for d in {{ facts.disks }}; do parted -s "$d" align-check optimal 1 || exit 1; done'
STOPPED = (
    'for md in {{ facts.stop_arrays }}; do ! grep -q "^${md##*/} :" /proc/mdstat || exit 1; done'
)
STOP = (
    "set -e; " + IDENTITY + "\nfor md in {{ facts.stop_arrays }}; do "
    'grep -q "^${md##*/} :" /proc/mdstat || continue; mdadm --stop "$md"; done'
)
#: Every member carries a superblock of one array with our name, level and member count.
ARRAY_EXISTS = (
    "u=; for m in {{ facts.members }}; do\n"
    '  e=$(mdadm --examine --export "$m" 2>/dev/null) || exit 1\n'
    '  echo "$e" | grep -qx MD_LEVEL={{ facts.raid_level }} || exit 1\n'
    '  echo "$e" | grep -qx MD_DEVICES={{ facts.member_count }} || exit 1\n'
    "  n=$(echo \"$e\" | sed -n 's/^MD_NAME=//p')\n"
    '  case "$n" in {{ facts.md_name }}|*:{{ facts.md_name }}) ;; *) exit 1;; esac\n'
    '  x=$(echo "$e" | sed -n \'s/^MD_UUID=//p\'); [ -n "$x" ] || exit 1\n'
    '  [ -z "$u" ] || [ "$u" = "$x" ] || exit 1; u=$x\n'
    "done"
)
CREATE = (
    "set -e; " + IDENTITY + "\nmdadm --create {{ facts.md_path }} --run --metadata=1.2 "
    "--homehost={{ facts.homehost }} --name={{ facts.md_name }} --level={{ facts.level }} "
    "--raid-devices={{ facts.member_count }} {{ facts.create_flags | option }} {{ facts.members }}"
)
#: Every member is in an active array in /proc/mdstat.
ASSEMBLED = (
    'for m in {{ facts.members }}; do grep -Eq "^md[^ ]* : active .*[[:space:]]${m##*/}\\[" '
    "/proc/mdstat || exit 1; done"
)
ASSEMBLE = (
    "for m in {{ facts.members }}; do\n"
    '  for x in $(awk -v m="${m##*/}[" \'$2==":" && $3=="inactive" '
    '{for (i=4; i<=NF; i++) if (index($i, m)==1) print $1}\' /proc/mdstat); do mdadm --stop "/dev/$x"; done\n'
    "done\n"
    "mdadm --assemble {{ facts.md_path }} --run {{ facts.members }}"
)
FS_OK = (
    'e=$(blkid -p -o export {{ facts.md_device }}) && echo "$e" | grep -qx TYPE={{ facts.fs }} '
    '&& echo "$e" | grep -qx LABEL={{ facts.label }}'
)
MKFS = (
    "t=$(blkid -p -o export {{ facts.md_device }} 2>/dev/null | sed -n 's/^TYPE=//p')\n"
    'if [ -n "$t" ] && [ {{ facts.format_over }} != yes ]; then\n'
    '  echo {{ facts.md_device }} "already carries $t: not formatting over it '
    "(list the member disks' serials in wipe to allow it)\" >&2; exit 1\n"
    "fi\n"
    "{{ facts.mkfs | option }} -L {{ facts.label }} {{ facts.md_device }}"
)

MOUNT_ROOT_OK = (
    'R={{ facts.root }}; mountpoint -q "$R" && [ -f "$R/etc/os-release" ] && '
    "findmnt -n -o OPTIONS --mountpoint \"$R\" | grep -q '^rw' && "
    'mountpoint -q "$R/dev" && mountpoint -q "$R/proc" && mountpoint -q "$R/sys" && '
    '{ ! awk \'$1 !~ /^#/ && $2=="/boot"\' "$R/etc/fstab" | grep -q . || mountpoint -q "$R/boot"; }'
)
#: Find the installed root among the md arrays by content: a system whose fstab mounts "/"
#: from this very filesystem (UUID=...), then mount it read-write with /dev, /proc, /sys, /boot.
MOUNT_ROOT = (
    'set -e; R={{ facts.root }}; mkdir -p "$R"\n'
    'if ! mountpoint -q "$R"; then\n'
    "  mdadm --assemble --scan >/dev/null 2>&1 || true\n"
    "  found=\n"
    '  for md in $(awk \'$2==":" && $3=="active" {print "/dev/" $1}\' /proc/mdstat); do\n'
    '    [ "$md" != {{ facts.md_device }} ] || continue\n'
    '    mount -o ro "$md" "$R" 2>/dev/null || continue\n'
    '    want=$(awk \'$1 !~ /^#/ && $2=="/" {print $1}\' "$R/etc/fstab" 2>/dev/null || true)\n'
    "    have=UUID=$(blkid -p -o export \"$md\" | sed -n 's/^UUID=//p')\n"
    '    if [ -f "$R/etc/os-release" ] && { [ "$want" = "$have" ] || [ "$want" = "$md" ]; }; '
    "then found=$md; break; fi\n"
    '    umount "$R"\n'
    "  done\n"
    "  [ -n \"$found\" ] || { echo 'no installed system found on the md arrays' >&2; exit 1; }\n"
    '  echo "installed system: $found"\n'
    '  mount -o remount,rw "$R"\n'
    "fi\n"
    'for fs in dev proc sys; do mountpoint -q "$R/$fs" || mount --bind "/$fs" "$R/$fs"; done\n'
    'if awk \'$1 !~ /^#/ && $2=="/boot"\' "$R/etc/fstab" | grep -q . && ! mountpoint -q "$R/boot"; '
    'then chroot "$R" mount /boot; fi'
)
CONF = "{{ facts.root }}/etc/mdadm/mdadm.conf"
MDADM_CONF_OK = (
    f"grep -qxF {{{{ facts.mdadm_line }}}} {CONF} && "
    f'[ "$(grep -cF UUID={{{{ facts.array_uuid }}}} {CONF})" -eq 1 ]'
)
#: Drop every line naming our UUID, then append ours: replaced, never duplicated.
MDADM_CONF = (
    f'set -e; f={CONF}; mkdir -p "${{f%/*}}"; touch "$f"\n'
    '{ grep -vF UUID={{ facts.array_uuid }} "$f" || true; echo {{ facts.mdadm_line }}; } > "$f.fleet-new"\n'
    'cat "$f.fleet-new" > "$f"; rm -f "$f.fleet-new"'
)
FSTAB = "{{ facts.root }}/etc/fstab"
_FSTAB_OURS = "'$1 !~ /^#/ && ($2 == m || $1 == u)'"
FSTAB_OK = (
    f"grep -qxF {{{{ facts.fstab_line }}}} {FSTAB} && "
    f'[ "$(awk -v m={{{{ facts.mount }}}} -v u=UUID={{{{ facts.fs_uuid }}}} {_FSTAB_OURS} {FSTAB} | wc -l)" -eq 1 ]'
)
#: Drop lines for our mount point or our filesystem (the seed's /dev/md4 line too), append ours.
FSTAB_WRITE = (
    f"set -e; f={FSTAB}\n"
    "awk -v m={{ facts.mount }} -v u=UUID={{ facts.fs_uuid }} "
    f'\'!({_FSTAB_OURS[1:-1]})\' "$f" > "$f.fleet-new"\n'
    'echo {{ facts.fstab_line }} >> "$f.fleet-new"\n'
    'cat "$f.fleet-new" > "$f"; rm -f "$f.fleet-new"'
)
STAMP = "{{ facts.root }}" + INITRAMFS_STAMP
INITRAMFS_OK = f'[ "$(sha256sum < {CONF})" = "$(cat {STAMP} 2>/dev/null)" ]'
INITRAMFS = (
    f"set -e; chroot {{{{ facts.root }}}} update-initramfs -u\n"
    f"mkdir -p {{{{ facts.root }}}}{INITRAMFS_STAMP.rsplit('/', 1)[0]}; sha256sum < {CONF} > {STAMP}"
)
#: The mount point exists and mounting there hides nothing (empty, or already a mount).
MOUNT_POINT_OK = (
    'd={{ facts.target_dir }}; test -d "$d" && { mountpoint -q "$d" || [ -z "$(ls -A "$d")" ]; }'
)
MOUNT_POINT = (
    'd={{ facts.target_dir }}; mkdir -p "$d"; mountpoint -q "$d" || [ -z "$(ls -A "$d")" ] || '
    '{ echo "$d is not empty: mounting the array over it would hide its files" >&2; exit 1; }'
)
UNMOUNTED = "! mountpoint -q {{ facts.root }}"
UNMOUNT = "sync; umount -R {{ facts.root }}"
LIVE_MOUNTED = "findmnt -n -o UUID --mountpoint {{ facts.mount }} | grep -qx {{ facts.fs_uuid }}"
LIVE_MOUNT = "systemctl daemon-reload 2>/dev/null || true; mount {{ facts.mount }}"

#: Plan-level check, run first on the host as it is: everything already holds, nothing to do.
CONVERGED = (
    'm={{ mount }}; src=$(findmnt -n -o SOURCE --mountpoint "$m") || exit 1\n'
    'u=$(findmnt -n -o UUID --mountpoint "$m"); [ -n "$u" ] || exit 1\n'
    '[ "$(findmnt -n -o FSTYPE --mountpoint "$m")" = {{ fs }} ] || exit 1\n'
    'blkid -p -o export "$src" | grep -qx LABEL={{ label }} || exit 1\n'
    'awk -v m="$m" -v u="UUID=$u" \'$1 == u && $2 == m\' /etc/fstab | grep -q . || exit 1\n'
    'd=$(mdadm --detail --export "$src") || exit 1\n'
    'echo "$d" | grep -qx MD_LEVEL=raid{{ level }} || exit 1\n'
    "n=$(echo \"$d\" | sed -n 's/^MD_NAME=//p')\n"
    'case "$n" in {{ md_name }}|*:{{ md_name }}) ;; *) exit 1;; esac\n'
    'a=$(echo "$d" | sed -n \'s/^MD_UUID=//p\'); [ -n "$a" ] || exit 1\n'
    'grep -q "^ARRAY .*UUID=$a" /etc/mdadm/mdadm.conf || exit 1\n'
    'g=/sys/block/$(basename "$(readlink -f "$src")")/md/degraded  # RAID0 has none\n'
    '[ ! -e "$g" ] || [ "$(cat "$g")" = 0 ] || exit 1\n'
    f'[ "$(sha256sum < /etc/mdadm/mdadm.conf)" = "$(cat {INITRAMFS_STAMP} 2>/dev/null)" ]'
)

RESCUE = {"mode": "rescue"}
LIVE = {"mode": "live"}
_CALL = "fleet.plans.hybrid_raid:"


def _step(name: str, apply: str, check: str | None = None, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "apply": apply, **extra}
    if check is not None:
        step["check"] = check
    return step


def _disk_stages() -> list[dict[str, Any]]:
    return [
        {"name": "partition", "steps": [
            _step("stop old arrays on wiped disks", STOP, STOPPED, destructive=True),
            _step("wipe and partition", PARTITION, LAYOUT, verify=f"{LAYOUT} && {ALIGNED}",
                  destructive=True),
        ]},
        {"name": "array", "steps": [
            _step("create", CREATE, ARRAY_EXISTS, verify=f"{ARRAY_EXISTS}\n{ASSEMBLED}",
                  destructive=True),
            _step("assemble", ASSEMBLE, ASSEMBLED, verify=ASSEMBLED),
        ]},
        {"name": "locate", "kind": "python", "call": _CALL + "locate"},
        {"name": "filesystem", "steps": [
            _step("mkfs", MKFS, FS_OK, verify=FS_OK, destructive=True, timeout=3600),
        ]},
        {"name": "identify", "kind": "python", "call": _CALL + "locate",
         "params": {"require_filesystem": True}},
    ]  # fmt: skip


def _persist_stage() -> dict[str, Any]:
    return {"name": "persist", "steps": [
        _step("mount the installed system", MOUNT_ROOT, MOUNT_ROOT_OK, verify=MOUNT_ROOT_OK,
              when=RESCUE),
        _step("mdadm.conf ARRAY line", MDADM_CONF, MDADM_CONF_OK, verify=MDADM_CONF_OK),
        _step("fstab line", FSTAB_WRITE, FSTAB_OK, verify=FSTAB_OK),
        _step("mount point", MOUNT_POINT, MOUNT_POINT_OK, verify=MOUNT_POINT_OK),
        _step("update-initramfs", INITRAMFS, INITRAMFS_OK, verify=INITRAMFS_OK, timeout=1800),
        _step("mount now", LIVE_MOUNT, LIVE_MOUNTED, verify=LIVE_MOUNTED, when=LIVE),
        _step("unmount the installed system", UNMOUNT, UNMOUNTED, verify=UNMOUNTED, when=RESCUE),
    ]}  # fmt: skip


def plan_data(settings: Settings) -> dict[str, Any]:
    """The plan as plain data (what ``parse_plan`` validates)."""
    notes = settings.notes()
    return {
        "name": "hybrid-raid",
        "description": "the HDD group as an mdadm array, mounted by UUID"
        + "".join(f"; warning: {n}" for n in notes),
        "vars": settings.plan_vars(),
        "converged": CONVERGED,
        "stages": [
            {"name": "rescue", "kind": "rescue", "when": RESCUE},
            {"name": "facts", "kind": "python", "call": _CALL + "gather"},
            {"name": "guard", "kind": "python", "call": _CALL + "select"},
            *_disk_stages(),
            _persist_stage(),
            {"name": "disk", "kind": "disk", "when": RESCUE},
            {"name": "verify", "kind": "python", "call": _CALL + "verify"},
            {"name": "reboot", "kind": "reboot"},
            {"name": "verify-again", "kind": "python", "call": _CALL + "verify"},
        ],
    }


def hybrid_raid(params: dict[str, Any]) -> Plan:
    """``builtin:hybrid-raid``: validate the ``--var`` parameters and build the plan."""
    settings = settings_from(params)
    for note in settings.notes():
        log.warning("hybrid-raid: %s", note)
    return parse_plan(plan_data(settings), "builtin:hybrid-raid")
