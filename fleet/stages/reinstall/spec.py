"""A reinstall stage's params: what to install, as the operator asked it (before looking at any
server), each value checked on its own. A bad value raises :class:`ReinstallRefused`, naming
the host (or stage) and the field."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.errors import PayloadError

PARAMS = (
    "os",
    "hostname",
    "ssh_key",
    "script_file",
    "script_sha256",
    "disk_group",
    "disks",
    "raid",
    "layout",
    "scheme",
)
#: ``dedicated.server.reinstall.storage.partitioning.layout.FileSystemEnum``.
FILE_SYSTEMS = frozenset(
    {"btrfs", "ext3", "ext4", "fat16", "none", "ntfs", "reiserfs", "swap", "ufs"}
    | {"vmfs5", "vmfs6", "vmfsl", "xfs", "zfs"}
)
#: Software RAID levels OVH accepts, and the fewest disks fleet lets each use.
RAID_MIN_DISKS = {0: 2, 1: 2, 5: 3, 6: 4, 7: 4, 10: 4}
_KEY_LINE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$"
)
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MOUNT = re.compile(r"^(/[\w.+-]*)+$|^/$|^swap$")


class ReinstallRefused(PayloadError):
    """The reinstall cannot work as asked; nothing was sent to OVH. Names host and field."""

    def __init__(self, where: str, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{where}: reinstall refused: {field}: {message}", hint=hint)
        self.where = where
        self.field = field


@dataclass(frozen=True)
class Partition:
    """One ``MOUNT:FS:SIZE_MIB[:RAID]`` entry of ``layout`` (size 0: the rest of the disk)."""

    mount: str
    fs: str
    size_mib: int
    raid: int | None = None

    def text(self) -> str:
        tail = "" if self.raid is None else f":{self.raid}"
        return f"{self.mount}:{self.fs}:{self.size_mib}{tail}"


@dataclass(frozen=True)
class ReinstallSpec:
    """What to install, as the operator asked it (before looking at any server)."""

    os: str
    hostname: str | None = None
    ssh_key: str | None = None
    script_file: str | None = None
    script_sha256: str | None = None
    disk_group: int | None = None
    disks: int | None = None
    raid: int | None = None
    layout: tuple[Partition, ...] = ()
    scheme: str | None = None

    def to_params(self) -> dict[str, Any]:
        """Stage params that :func:`parse_params` reads back into this spec."""
        values: dict[str, Any] = {
            "os": self.os,
            "hostname": self.hostname,
            "ssh_key": self.ssh_key,
            "script_file": self.script_file,
            "script_sha256": self.script_sha256,
            "disk_group": self.disk_group,
            "disks": self.disks,
            "raid": self.raid,
            "layout": [p.text() for p in self.layout] or None,
            "scheme": self.scheme,
        }
        return {key: value for key, value in values.items() if value is not None}

    @property
    def partitioned(self) -> bool:
        return bool(self.layout or self.disks or self.scheme or self.raid is not None)


def parse_params(params: Mapping[str, Any], where: str) -> ReinstallSpec:
    """Read a reinstall stage's params; ``where`` names the host or stage in errors."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ReinstallRefused(where, unknown[0], "unknown parameter", hint=_known_params())
    os_name = params.get("os")
    if not isinstance(os_name, str) or not os_name.strip():
        raise ReinstallRefused(where, "os", "required: the OS template to install")
    raid = _optional_int(params, "raid", where)
    if raid is not None and raid not in RAID_MIN_DISKS:
        raise ReinstallRefused(where, "raid", f"{raid} is not one of {_raid_levels()}")
    spec = ReinstallSpec(
        os=os_name.strip(),
        hostname=_optional_text(params, "hostname", where),
        ssh_key=_optional_text(params, "ssh_key", where),
        script_file=_optional_text(params, "script_file", where),
        script_sha256=_optional_text(params, "script_sha256", where),
        disk_group=_optional_int(params, "disk_group", where),
        disks=_optional_int(params, "disks", where),
        raid=raid,
        layout=_layout(params.get("layout"), where),
        scheme=_optional_text(params, "scheme", where),
    )
    _check_spec(spec, where)
    return spec


def _check_spec(spec: ReinstallSpec, where: str) -> None:
    if spec.ssh_key is not None:
        check_public_key(spec.ssh_key, where)
    if spec.disks is not None and spec.disks < 1:
        raise ReinstallRefused(where, "disks", f"{spec.disks}: at least 1 disk")
    if spec.raid is not None and not spec.layout:
        raise ReinstallRefused(
            where, "raid", "applies to the layout's partitions", hint="give a layout too"
        )
    if spec.script_sha256 is not None and not spec.script_file:
        raise ReinstallRefused(where, "script_sha256", "given without script_file")
    if spec.layout:
        _check_layout(spec.layout, where)


def _known_params() -> str:
    return "known parameters: " + ", ".join(PARAMS)


def _raid_levels() -> str:
    return ", ".join(str(level) for level in RAID_MIN_DISKS)


def _optional_text(params: Mapping[str, Any], key: str, where: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ReinstallRefused(where, key, f"expected text, got {value!r}")
    return value.strip()


def _optional_int(params: Mapping[str, Any], key: str, where: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReinstallRefused(where, key, f"expected a whole number, got {value!r}")
    return value


def _layout(value: Any, where: str) -> tuple[Partition, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ReinstallRefused(where, "layout", "expected a list of MOUNT:FS:SIZE_MIB[:RAID]")
    return tuple(parse_partition(item, where) for item in items)


def parse_partition(item: Any, where: str) -> Partition:
    """``/:ext4:20480``, ``swap:swap:4096``, ``/data:xfs:0:1`` -> :class:`Partition`."""
    parts = item.split(":") if isinstance(item, str) else []
    if len(parts) not in (3, 4):
        raise ReinstallRefused(where, "layout", f"{item!r}: expected MOUNT:FS:SIZE_MIB[:RAID]")
    mount, fs, size, *rest = (part.strip() for part in parts)
    if not _MOUNT.match(mount):
        raise ReinstallRefused(where, "layout", f"{item!r}: mount point {mount!r} is not absolute")
    if fs not in FILE_SYSTEMS:
        known = ", ".join(sorted(FILE_SYSTEMS))
        raise ReinstallRefused(
            where, "layout", f"{item!r}: file system {fs!r} is not one of {known}"
        )
    if (fs == "swap") != (mount == "swap"):
        raise ReinstallRefused(where, "layout", f"{item!r}: swap goes with mount point swap")
    if not size.isdigit():
        raise ReinstallRefused(where, "layout", f"{item!r}: size {size!r} is not a number of MiB")
    raid = None
    if rest and rest[0]:
        if not rest[0].isdigit() or int(rest[0]) not in RAID_MIN_DISKS:
            levels = _raid_levels()
            raise ReinstallRefused(
                where, "layout", f"{item!r}: RAID {rest[0]!r} is not one of {levels}"
            )
        raid = int(rest[0])
    return Partition(mount, fs, int(size), raid)


def _check_layout(layout: Sequence[Partition], where: str) -> None:
    mounts = [p.mount for p in layout if p.mount != "swap"]
    duplicates = sorted({m for m in mounts if mounts.count(m) > 1})
    if duplicates:
        raise ReinstallRefused(where, "layout", f"mount point {duplicates[0]} appears twice")
    if "/" not in mounts:
        raise ReinstallRefused(where, "layout", "no partition for /")
    if sum(1 for p in layout if p.size_mib == 0) > 1:
        raise ReinstallRefused(where, "layout", "more than one partition fills the disk (size 0)")


def check_public_key(line: str, where: str) -> str:
    """An OpenSSH public key line, or refuse: OVH would install a key nobody can use."""
    line = line.strip()
    if not _KEY_LINE.match(line):
        raise ReinstallRefused(
            where,
            "ssh_key",
            f"not an OpenSSH public key line: {line[:40]!r}...",
            hint="give the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub",
        )
    return line


def hostname_for(template: str, host: str, service: str, where: str) -> str:
    """``{name}``/``{service}`` replaced, then checked as a DNS name (RFC 1123)."""
    name = template.replace("{name}", host).replace("{service}", service)
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ReinstallRefused(
            where,
            "hostname",
            f"{name!r} is not a valid host name",
            hint="letters, digits and '-' in dot-separated labels; {name} and {service} are replaced",
        )
    return name
