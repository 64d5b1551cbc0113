"""OVH data: disk classification (hybrid) and enrichment of hosts from the API."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from fleet.errors import InventoryError, ProviderNotFound
from fleet.inventory.records import DiskSummary, Host, Inventory

if TYPE_CHECKING:
    from fleet.provider.base import DiskGroup, Hardware, Server


#: The package's logger name, as before the split (log configuration names it).
logger = logging.getLogger("fleet.inventory")


#: Disk types (upper-cased substrings of OVH's free-text ``diskType``).
FAST_DISK_TYPES = ("NVME", "SSD")
ROTATIONAL_DISK_TYPES = ("HDD", "SATA", "SAS")


class ServerSource(Protocol):
    """The part of :class:`fleet.provider.base.Provider` that the inventory reads."""

    def list_servers(self) -> list[str]: ...

    def server(self, name: str) -> Server: ...

    def hardware(self, name: str) -> Hardware: ...


def _disk_kind(disk_type: str) -> str | None:
    """ "NVME", "SSD", "HDD" (any rotational type) or None for a type fleet does not know."""
    text = disk_type.upper().replace(" ", "")
    for fast in FAST_DISK_TYPES:
        if fast in text:
            return fast
    if any(slow in text for slow in ROTATIONAL_DISK_TYPES):
        return "HDD"
    return None


def classify_disks(hardware: Hardware) -> DiskSummary:
    """Hybrid = an NVMe or SSD group (the system) plus a rotational group (HDD, SATA, SAS).

    ``diskType`` is free text, so matching is by case-insensitive substring: "SATA SSD" is an
    SSD, "SAS" alone is rotational, and an unknown type counts as neither.
    """
    kinds = [(group, _disk_kind(group.disk_type)) for group in hardware.disk_groups]
    fast = [group for group, kind in kinds if kind in FAST_DISK_TYPES]
    system = next((g for g in fast if _disk_kind(g.disk_type) == "NVME"), fast[0] if fast else None)
    slow = [group for group, kind in kinds if kind == "HDD"]
    return DiskSummary(
        hybrid=bool(system and slow),
        system_type=_disk_kind(system.disk_type) if system else None,
        hdd_count=sum(g.count for g in slow),
        hdd_size_gb=min((g.size_gb for g in slow), default=0),
        system_count=system.count if system else 0,
        system_size_gb=system.size_gb if system else 0,
        hdd_total_gb=sum(g.count * g.size_gb for g in slow),
        description=" + ".join(_describe(g) for g in hardware.disk_groups),
        kinds=tuple(k for k in ("NVME", "SSD", "HDD") if any(kind == k for _, kind in kinds)),
    )


def _describe(group: DiskGroup) -> str:
    return f"{group.count}x{group.size_gb}GB {group.disk_type.strip() or '?'}"


def enrich(
    inventory: Inventory,
    provider: ServerSource,
    *,
    include_unlisted: bool = False,
    max_workers: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Inventory:
    """Add what the OVH API knows to the hosts that name a ``fleet.ovh_service``.

    The files win: datacenter and rack come from the API only where the inventory sets none;
    ``disks`` and ``model`` always come from the API; the address is the inventory's (Ansible's
    ``ansible_host``, or the host's name). With ``include_unlisted``, the account's servers that
    no host names are added as hosts named by their service name (root@ip:22).
    ``progress(done, total)`` is called as each server's details arrive.

    Raises:
        InventoryError: a host names a service the account does not have, or an unlisted
            server's name is already a host without ``ovh_service``.
        ProviderError: the API failed.
    """
    listed = {host.service_name: host for host in inventory.hosts if host.service_name}
    unlisted: list[str] = []
    if include_unlisted:
        unlisted = sorted(set(provider.list_servers()) - listed.keys())
        _refuse_name_clash(inventory, unlisted)
    details = _fetch_all(provider, [*listed, *unlisted], listed, max_workers, progress)
    hosts = [
        _merge(host, *details[host.service_name]) if host.service_name else host
        for host in inventory.hosts
    ]
    hosts += [_unlisted_host(name, *details[name]) for name in unlisted]
    groups = dict(inventory.groups)
    groups["all"] = tuple(host.name for host in hosts)
    return Inventory(tuple(hosts), groups)


def from_provider(provider: ServerSource, *, max_workers: int = 8) -> Inventory:
    """An inventory of every server of the OVH account, named by service name."""
    inventory = enrich(
        Inventory((), {"all": ()}), provider, include_unlisted=True, max_workers=max_workers
    )
    if not inventory.hosts:
        raise InventoryError("the OVH account has no dedicated server", path="ovh")
    return inventory


def _refuse_name_clash(inventory: Inventory, unlisted: Sequence[str]) -> None:
    for name in unlisted:
        host = inventory.get(name)
        if host is not None:
            raise InventoryError(
                f"host {name!r} has the name of an OVH server but no fleet.ovh_service",
                path=host.source,
                hint=f"add `fleet: {{ovh_service: {name}}}` to it",
            )


def _fetch_all(
    provider: ServerSource,
    names: Sequence[str],
    listed: Mapping[str, Host],
    max_workers: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, tuple[Server, Hardware]]:
    """Server and hardware of each service, a few at a time (the provider paces itself)."""
    if not names:
        return {}
    results: dict[str, tuple[Server, Hardware]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(names)))) as pool:
        futures = {name: pool.submit(_fetch, provider, name) for name in names}
        try:
            for name, future in futures.items():
                results[name] = _result(future, listed.get(name))
                if progress is not None:
                    progress(len(results), len(names))
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, start no further calls
    return results


def _fetch(provider: ServerSource, name: str) -> tuple[Server, Hardware]:
    return provider.server(name), provider.hardware(name)


def _result(future: Future[tuple[Server, Hardware]], host: Host | None) -> tuple[Server, Hardware]:
    try:
        return future.result()
    except ProviderNotFound as exc:
        if host is None:
            raise
        raise InventoryError(
            f"fleet.ovh_service {host.service_name!r} of host {host.name!r} is not a server "
            "of this OVH account",
            path=host.source,
            key="ovh_service",
        ) from exc


def _merge(host: Host, server: Server, hardware: Hardware) -> Host:
    for attr, api_value in (("datacenter", server.datacenter), ("rack", server.rack)):
        mine = getattr(host, attr)
        if mine and api_value and mine != api_value:
            logger.warning(
                "Host %r: inventory %s %r differs from OVH's %r; keeping the inventory's",
                host.name, attr, mine, api_value,
            )  # fmt: skip
    return replace(
        host,
        address=host.address or server.ip,
        datacenter=host.datacenter or server.datacenter or None,
        rack=host.rack or server.rack or None,
        disks=classify_disks(hardware),
        model=hardware.description or None,
    )


def _unlisted_host(name: str, server: Server, hardware: Hardware) -> Host:
    return Host(
        name=name,
        address=server.ip,
        service_name=name,
        datacenter=server.datacenter or None,
        rack=server.rack or None,
        disks=classify_disks(hardware),
        source="ovh",
        model=hardware.description or None,
    )
