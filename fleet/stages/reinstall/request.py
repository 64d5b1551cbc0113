"""The request for one server: the ``dedicated.server.Reinstall`` body, built only after the
server's hardware and compatible templates show that it can work (GETs only)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.provider.base import DiskGroup, Hardware, Provider
from fleet.stages.reinstall.spec import (
    RAID_MIN_DISKS,
    Partition,
    ReinstallRefused,
    ReinstallSpec,
    check_public_key,
    hostname_for,
)

if TYPE_CHECKING:
    from fleet.inventory import Host


def is_system_type(group: DiskGroup) -> bool:
    """NVMe and SSD groups carry the system; HDD/SATA/SAS groups carry data."""
    kind = group.disk_type.upper()
    return "NVME" in kind or "SSD" in kind


def describe_group(group: DiskGroup) -> str:
    return f"{group.id} ({group.count} X {group.disk_type} {group.size_gb} GB)"


def system_group(hardware: Hardware, requested: int | None, where: str) -> DiskGroup:
    """The disk group the OS goes to: the single NVMe/SSD group, else the only group.

    An explicit ``disk_group`` must exist and must not be a data (HDD) group of a server that
    has a system group: installing there would wipe the data array.
    """
    groups = list(hardware.disk_groups)
    listing = ", ".join(describe_group(g) for g in groups) or "none"
    system = [g for g in groups if is_system_type(g)]
    if requested is not None:
        chosen = next((g for g in groups if g.id == requested), None)
        if chosen is None:
            raise ReinstallRefused(
                where, "disk_group", f"no disk group {requested} (groups: {listing})"
            )
        if system and not is_system_type(chosen):
            raise ReinstallRefused(
                where,
                "disk_group",
                f"group {describe_group(chosen)} is a data (HDD) group; the system goes to the "
                f"NVMe/SSD group {', '.join(str(g.id) for g in system)}",
            )
        return chosen
    if len(system) == 1:
        return system[0]
    if not system and len(groups) == 1:
        return groups[0]
    raise ReinstallRefused(
        where,
        "disk_group",
        f"cannot tell which group carries the system (groups: {listing})",
        hint="name it with disk_group (--disk-group)",
    )


def storage_for(spec: ReinstallSpec, group: DiskGroup, where: str) -> dict[str, Any]:
    """One ``dedicated.server.reinstall.Storage``: the system group, with its partitioning."""
    storage: dict[str, Any] = {"diskGroupId": group.id}
    if not spec.partitioned:
        return storage
    used = spec.disks or group.count
    if used > group.count:
        raise ReinstallRefused(
            where, "disks", f"{used} disks asked, group {describe_group(group)} has {group.count}"
        )
    partitioning: dict[str, Any] = {}
    if spec.disks is not None:
        partitioning["disks"] = spec.disks
    if spec.scheme:
        partitioning["schemeName"] = spec.scheme
    if spec.layout:
        partitioning["layout"] = [
            _layout_item(p, spec.raid, used, group, where) for p in spec.layout
        ]
    storage["partitioning"] = partitioning
    return storage


def _layout_item(
    part: Partition, default_raid: int | None, used: int, group: DiskGroup, where: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"mountPoint": part.mount, "fileSystem": part.fs, "size": part.size_mib}
    raid = part.raid if part.raid is not None else (None if part.fs == "swap" else default_raid)
    if raid is not None:
        needed = RAID_MIN_DISKS[raid]
        if used < needed:
            raise ReinstallRefused(
                where,
                "raid",
                f"RAID {raid} for {part.mount} needs at least {needed} disks; "
                f"{used} of group {describe_group(group)} are used",
            )
        item["raidLevel"] = raid
    return item


@dataclass(frozen=True)
class Target:
    """The server a request is built for, as the inventory and the API know it."""

    host: str
    service: str
    hardware: Hardware
    templates: Sequence[str]


def build_request(
    spec: ReinstallSpec, target: Target, *, ssh_key: str | None, script: str | None
) -> dict[str, Any]:
    """The ``dedicated.server.Reinstall`` body, or :class:`ReinstallRefused`. Pure."""
    where = target.host
    if spec.os not in target.templates:
        raise ReinstallRefused(
            where,
            "os",
            f"{spec.os!r} is not compatible with {target.service}",
            hint="compatible: " + (", ".join(sorted(target.templates)) or "none"),
        )
    key = spec.ssh_key or ssh_key
    if not key:
        raise ReinstallRefused(
            where,
            "ssh_key",
            "no SSH key to install: fleet could not log in afterwards",
            hint="give --ssh-key FILE or set rescue.ssh_public_key",
        )
    custom: dict[str, Any] = {"sshKey": check_public_key(key, where)}
    if spec.hostname:
        custom["hostname"] = hostname_for(spec.hostname, target.host, target.service, where)
    if script is not None:
        custom["postInstallationScript"] = base64.b64encode(script.encode()).decode("ascii")
    group = system_group(target.hardware, spec.disk_group, where)
    return {
        "operatingSystem": spec.os,
        "customizations": custom,
        "storage": [storage_for(spec, group, where)],
    }


def read_script(spec: ReinstallSpec, where: str) -> str | None:
    """The post-installation script's text, checked against ``script_sha256`` when given."""
    if not spec.script_file:
        return None
    path = Path(spec.script_file).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReinstallRefused(where, "script_file", f"{path}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if spec.script_sha256 and digest != spec.script_sha256.lower():
        raise ReinstallRefused(
            where, "script_file", f"{path} changed since the run started (sha256 {digest[:12]})"
        )
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ReinstallRefused(where, "script_file", f"{path} is not UTF-8 text") from exc
    if not text.strip():
        raise ReinstallRefused(where, "script_file", f"{path} is empty")
    return text


def prepare_request(
    provider: Provider, host: Host, spec: ReinstallSpec, *, ssh_key: str | None
) -> dict[str, Any]:
    """Look the server up (GETs only) and build its request, or refuse."""
    service = host.service_name
    if not service:
        raise ReinstallRefused(
            host.name, "ovh_service", "not set in the inventory's fleet: mapping"
        )
    target = Target(
        host.name, service, provider.hardware(service), provider.compatible_templates(service)
    )
    return build_request(spec, target, ssh_key=ssh_key, script=read_script(spec, host.name))
