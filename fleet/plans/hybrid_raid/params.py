"""The hybrid-raid plan's parameters: validated from ``--var`` strings or inventory vars."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.errors import UsageError
from fleet.plans import disks
from fleet.stages.call import StageContext

PARAMS = (
    "level", "mount", "fs", "label", "md_name", "mode", "reboot", "assume_clean", "wipe",
    "min_size", "max_size", "model", "count", "transport",
)  # fmt: skip
LEVELS = (0, 1, 5, 6, 10)
FILESYSTEMS = {"ext4": 16, "xfs": 12}  # filesystem -> longest label
REBOOTS = ("auto", "ovh", "ssh")
#: Transports ``transport=`` may name (lsblk TRAN values).
TRANSPORTS = ("sata", "sas", "nvme", "usb", "iscsi", "fc", "ata", "scsi", "virtio", "mmc")
#: The md superblock name is 32 bytes: fleet's marker (15 with its colon) and the name.
MD_NAME_MAX = 16
_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGTP]?)(i?)(B?)\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}$")  # never a leading '-' (an option)
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
    mode: str = "rescue"
    reboot: str = "auto"
    assume_clean: bool = False
    wipe: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    model: str | None = None
    count: int | None = None
    transport: tuple[str, ...] = disks.DEFAULT_TRANSPORTS

    @property
    def target(self) -> disks.Target:
        return disks.Target(self.level, self.md_name, self.mount, self.fs, self.label)

    @property
    def rule(self) -> disks.DiskRule:
        return disks.DiskRule(self.min_size, self.max_size, self.model, self.count, self.transport)

    def plan_vars(self) -> dict[str, Any]:
        """As plan vars: only JSON scalars and lists, unset filters left out."""
        out: dict[str, Any] = {
            "level": self.level, "mount": self.mount, "fs": self.fs, "label": self.label,
            "md_name": self.md_name, "mode": self.mode, "reboot": self.reboot,
            "assume_clean": self.assume_clean, "wipe": list(self.wipe),
            "transport": list(self.transport),
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
        wider = [t for t in self.transport if t not in disks.DEFAULT_TRANSPORTS]
        if wider:
            out.append(f"transport also takes {', '.join(wider)} disks (not local by default)")
        return out


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


def _words(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else re.split(r"[,\s]+", str(value))
    return tuple(s for s in (str(i).strip() for i in items) if s)


def _transports(value: Any) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(t.lower() for t in _words(value)))
    unknown = [t for t in found if t not in TRANSPORTS]
    if unknown or not found:
        raise UsageError(
            f"transport={value!r}: expected transports among {', '.join(TRANSPORTS)}",
            hint="the default is sata,sas,nvme; add usb or iscsi only for disks meant to be used",
        )
    return found


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


def _choice(values: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = str(values.get(name, default))
    if value not in allowed:
        raise UsageError(f"{name}={value!r}: expected {' or '.join(allowed)}")
    return value


def _text_params(values: Mapping[str, Any], fs: str) -> dict[str, Any]:
    label = str(values.get("label", "data"))
    if not _NAME.match(label) or len(label) > FILESYSTEMS[fs]:
        raise UsageError(
            f"label={label!r}: at most {FILESYSTEMS[fs]} characters for {fs}, letters, digits, "
            "_.- (not first: -)"
        )
    md_name = str(values.get("md_name", "md4"))
    if not _NAME.match(md_name) or len(md_name) > MD_NAME_MAX:
        raise UsageError(
            f"md_name={md_name!r}: 1-{MD_NAME_MAX} letters, digits and _.- (not first: -)"
        )
    model = values.get("model")
    return {"label": label, "md_name": md_name,
            "mode": _choice(values, "mode", "rescue", ("rescue", "live")),
            "reboot": _choice(values, "reboot", "auto", REBOOTS),
            "model": str(model) if model not in (None, "") else None}  # fmt: skip


def settings_from(values: Mapping[str, Any]) -> Settings:
    """Validate parameters (strings from ``--var``, or typed values from inventory vars)."""
    unknown = sorted(set(values) - set(PARAMS))
    if unknown:
        hint = "parameters: " + ", ".join(PARAMS)
        if "homehost" in unknown:
            hint += " (fleet sets the homehost itself: its ownership marker)"
        raise UsageError(f"hybrid-raid has no parameter {', '.join(unknown)}", hint=hint)
    fs = str(values.get("fs", "ext4"))
    if fs not in FILESYSTEMS:
        raise UsageError(f"fs={fs!r}: expected ext4 or xfs")

    def size(name: str) -> int | None:
        value = values.get(name)
        return None if value in (None, "") else parse_size(str(value), name)

    count = values.get("count")
    transport = values.get("transport")
    settings = Settings(
        level=_int(values.get("level", 1), "level", LEVELS),
        mount=_mount(values.get("mount", "/opt")),
        fs=fs,
        assume_clean=_bool(values.get("assume_clean", False), "assume_clean"),
        wipe=_words(values.get("wipe", ())),
        min_size=size("min_size"),
        max_size=size("max_size"),
        count=None if count in (None, "") else _int(count, "count"),
        transport=disks.DEFAULT_TRANSPORTS if transport in (None, "") else _transports(transport),
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
