"""OVH's models as fleet's records (pure; unknown fields ignored), and the choice of boots.

Each ``*_from`` function takes one decoded JSON answer and returns a value of
:mod:`fleet.provider.base`, or raises :class:`~fleet.errors.ProviderError` naming the server
and what was unreadable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fleet.errors import ProviderError
from fleet.provider.base import (
    Boot,
    DiskGroup,
    Hardware,
    InstallStatus,
    InstallStep,
    Server,
    Task,
)
from fleet.provider.ovh_errors import clip

if TYPE_CHECKING:
    from collections.abc import Iterable

_GB_PER_UNIT = {
    "MB": 0.001,
    "GB": 1.0,
    "TB": 1000.0,
    "PB": 1_000_000.0,
    "MIB": 1024**2 / 1e9,
    "GIB": 1024**3 / 1e9,
    "TIB": 1024**4 / 1e9,
}


def size_in_gb(size: Any, *, server: str | None = None) -> int:
    """``{"unit": "TB", "value": 4}`` -> 4000 (decimal units, as OVH counts disk sizes)."""
    if not isinstance(size, dict) or not isinstance(size.get("value"), (int, float)):
        raise ProviderError(f"unreadable disk size {size!r}", server=server)
    unit = str(size.get("unit") or "").upper()
    factor = _GB_PER_UNIT.get(unit)
    if factor is None:
        raise ProviderError(f"unknown disk size unit {size.get('unit')!r} in {size}", server=server)
    return round(float(size["value"]) * factor)


def server_from(name: str, data: Any) -> Server:
    """``dedicated.server.Dedicated`` -> :class:`Server`."""
    item = expect_dict(data, server=name, what="server")
    boot_id = item.get("bootId")
    return Server(
        name=str(item.get("name") or name),
        ip=str(item.get("ip") or ""),
        datacenter=str(item.get("datacenter") or ""),
        rack=str(item.get("rack") or ""),
        state=str(item.get("state") or ""),
        boot_id=int(boot_id) if boot_id is not None else None,
        rescue_ssh_key=item.get("rescueSshKey"),
        os=str(item.get("os") or ""),
        power_state=str(item.get("powerState") or ""),
        reverse=item.get("reverse"),
    )


def hardware_from(name: str, data: Any) -> Hardware:
    """``dedicated.server.HardwareSpecifications`` -> :class:`Hardware`."""
    item = expect_dict(data, server=name, what="hardware specifications")
    groups = item.get("diskGroups") or []
    if not isinstance(groups, list):
        raise ProviderError(f"diskGroups is not a list: {clip(repr(groups))}", server=name)
    return Hardware(
        description=str(item.get("description") or ""),
        disk_groups=tuple(disk_group_from(name, i, g) for i, g in enumerate(groups, start=1)),
        boot_mode=item.get("bootMode"),
        default_disk_group=_int_or_none(item.get("defaultDiskGroupId")),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def disk_group_from(name: str, position: int, data: Any) -> DiskGroup:
    """One ``diskGroups[]`` entry; a missing ``diskGroupId`` falls back to its 1-based position."""
    item = expect_dict(data, server=name, what="disk group")
    group_id = item.get("diskGroupId")
    return DiskGroup(
        id=int(group_id) if group_id is not None else position,
        disk_type=str(item.get("diskType") or ""),
        count=int(item.get("numberOfDisks") or 0),
        size_gb=size_in_gb(item.get("diskSize"), server=name),
        description=str(item.get("description") or ""),
    )


def boot_from(data: Any, *, server: str | None = None) -> Boot:
    """``dedicated.server.Netboot`` -> :class:`Boot`."""
    item = expect_dict(data, server=server, what="boot")
    if item.get("bootId") is None:
        raise ProviderError(f"boot without bootId: {clip(repr(item))}", server=server)
    return Boot(
        id=int(item["bootId"]),
        type=str(item.get("bootType") or ""),
        kernel=str(item.get("kernel") or ""),
        description=str(item.get("description") or ""),
    )


def task_from(data: Any, *, server: str | None = None, query_id: str | None = None) -> Task:
    """``dedicated.server.Task`` or the short ``task.Response`` of a reinstall -> :class:`Task`."""
    item = expect_dict(data, server=server, what="task")
    if item.get("taskId") is None or not item.get("status"):
        raise ProviderError(f"task without taskId/status: {clip(repr(item))}", server=server)
    return Task(
        id=int(item["taskId"]),
        function=str(item.get("function") or ""),
        status=str(item["status"]),
        comment=item.get("comment"),
        start_date=date_from(item.get("startDate"), server=server, what="startDate"),
        done_date=date_from(item.get("doneDate"), server=server, what="doneDate"),
        query_id=query_id,
    )


def date_from(value: Any, *, server: str | None = None, what: str = "date") -> datetime | None:
    """An OVH ``datetime`` as an aware UTC datetime; None for null.

    OVH writes ISO 8601 with an offset, to the second (``2024-01-26T17:57:10+01:00``) or to the
    millisecond in UTC (``2024-11-20T15:22:14.449Z``). A date without an offset is refused:
    reading it in the wrong zone would shift it by hours, and task adoption compares dates.
    """
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or at.utcoffset() is None:
        reason = "without a time zone" if at is not None else "unreadable"
        raise ProviderError(f"{what} {clip(repr(value))} is {reason}", server=server)
    return at.astimezone(UTC)


def install_status_from(data: Any, *, server: str | None = None) -> InstallStatus:
    """``dedicated.server.InstallationProgressStatus`` -> :class:`InstallStatus`."""
    item = expect_dict(data, server=server, what="install status")
    steps = [
        expect_dict(step, server=server, what="install step") for step in item.get("progress") or []
    ]
    return InstallStatus(
        elapsed_seconds=int(item.get("elapsedTime") or 0),
        steps=tuple(
            InstallStep(
                comment=str(step.get("comment") or ""),
                status=str(step.get("status") or ""),
                error=step.get("error"),
            )
            for step in steps
        ),
    )


def expect_dict(data: Any, *, server: str | None, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProviderError(f"expected a {what} object, got {clip(repr(data))}", server=server)
    return data


def expect_list(data: Any, *, server: str | None, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ProviderError(f"expected a list of {what}, got {clip(repr(data))}", server=server)
    return data


#: Customer rescue kernels, most preferred first.
RESCUE_KERNELS = ("rescue12-customer", "rescue-customer")


def choose_rescue_boot(boots: Iterable[Boot]) -> Boot | None:
    """The customer rescue: ``rescue12-customer``, then ``rescue-customer``, then any kernel
    naming "customer". Never a fixed id nor the first entry: ids and order vary by server."""
    candidates = sorted(boots, key=lambda boot: (boot.kernel, boot.id))
    for kernel in RESCUE_KERNELS:
        for boot in candidates:
            if boot.kernel == kernel:
                return boot
    return next((boot for boot in candidates if "customer" in boot.kernel), None)


def choose_disk_boot(boots: Iterable[Boot]) -> Boot | None:
    """The boot from the installed system: kernel ``hd``, else the only harddisk boot."""
    disk = [boot for boot in boots if boot.type in ("harddisk", "")]
    for boot in disk:
        if boot.kernel == "hd":
            return boot
    return disk[0] if len(disk) == 1 else None
