"""Loading inventory files: file discovery, inheritance resolution and the host records."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory.parser import _Drafts, _FileParser, _GroupDraft, _HostDraft
from fleet.inventory.records import Host, Inventory
from fleet.inventory.yamlfile import _read_yaml

DEFAULT_PORT = 22
DEFAULT_USER = "root"


def load_inventory(paths: Sequence[Path | str]) -> Inventory:
    """Load YAML inventory files and directories (their ``*.yaml``/``*.yml``, sorted).

    Raises:
        InventoryError: naming the file, line and key of the first problem found.
    """
    drafts = _Drafts()
    for path in _inventory_files(paths):
        _FileParser(path, drafts).parse(_read_yaml(path))
    return _resolve(drafts, paths)


def _inventory_files(paths: Sequence[Path | str]) -> list[Path]:
    if not paths:
        raise InventoryError("no inventory file given", path="<inventory>")
    files: dict[Path, None] = {}  # ordered set: the same file named twice is read once
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith(".")
            )
            if not found:
                raise InventoryError("no *.yaml or *.yml file in this directory", path=str(path))
            files.update(dict.fromkeys(p.resolve() for p in found))
        elif path.is_file():
            files[path.resolve()] = None
        else:
            raise InventoryError("no such inventory file or directory", path=str(path))
    return list(files)


def _resolve(drafts: _Drafts, paths: Sequence[Path | str]) -> Inventory:
    if not drafts.hosts:
        where = ", ".join(str(p) for p in paths)
        raise InventoryError("the inventory defines no host", path=where)
    clash = sorted(drafts.groups.keys() & drafts.hosts.keys())
    if clash:
        raise drafts.hosts[clash[0]].site.error(f"{clash[0]!r} names both a host and a group")
    lineage = _lineage(drafts.groups)
    hosts = tuple(_build_host(name, d, drafts, lineage) for name, d in drafts.hosts.items())
    _refuse_shared_services(hosts)
    groups = {
        group: tuple(h.name for h in hosts if group == "all" or group in h.groups)
        for group in drafts.groups
    }
    return Inventory(hosts, groups)


def _lineage(groups: dict[str, _GroupDraft]) -> dict[str, tuple[int, frozenset[str]]]:
    """Per group: its depth (longest path from ``all``) and its ancestors."""
    done: dict[str, tuple[int, frozenset[str]]] = {"all": (0, frozenset())}

    def visit(name: str, trail: tuple[str, ...]) -> tuple[int, frozenset[str]]:
        if name in done:
            return done[name]
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name) :], name))
            raise InventoryError(f"groups contain each other: {cycle}", path=groups[name].where)
        parents = sorted(groups[name].parents)
        above = [visit(parent, (*trail, name)) for parent in parents]
        ancestors = frozenset(parents).union(*(a for _, a in above))
        done[name] = (1 + max(d for d, _ in above), ancestors)
        return done[name]

    for name in groups:
        visit(name, ())
    return done


def _build_host(
    name: str, draft: _HostDraft, drafts: _Drafts, lineage: dict[str, tuple[int, frozenset[str]]]
) -> Host:
    member_of = {"all", *draft.groups}.union(*(lineage[g][1] for g in draft.groups))
    order = sorted(member_of, key=lambda g: (lineage[g][0], g))
    settings: dict[str, Any] = {"port": DEFAULT_PORT, "user": DEFAULT_USER}
    labels: dict[str, str] = {}
    user_vars: dict[str, Any] = {}
    for layer in [*(drafts.groups[g].layer for g in order), draft.layer]:
        settings.update((key, v.value) for key, v in layer.fields.items())
        labels.update((key, v.value) for key, v in layer.labels.items())
        user_vars.update((key, v.value) for key, v in layer.vars.items())
    if not settings.get("address") and not settings.get("ovh_service"):
        raise draft.site.error(
            f"host {name!r} has no address",
            hint="set address: (or ansible_host:) on the host or in a group's vars, "
            "or ovh_service: to take it from the OVH API",
        )
    return Host(
        name=name,
        address=settings.get("address", ""),
        port=settings["port"],
        user=settings["user"],
        key_file=settings.get("ssh_key"),
        service_name=settings.get("ovh_service"),
        datacenter=settings.get("datacenter"),
        rack=settings.get("rack"),
        groups=tuple(sorted(member_of - {"all"})),
        labels=labels,
        vars=copy.deepcopy(user_vars),
        source=draft.site.where,
        bastion=settings.get("bastion"),
        connect_timeout=settings.get("connect_timeout"),
        command_timeout=settings.get("command_timeout"),
        sudo_password=settings.get("sudo_password"),
    )


def _refuse_shared_services(hosts: Sequence[Host]) -> None:
    owners: dict[str, Host] = {}
    for host in hosts:
        if host.service_name is None:
            continue
        other = owners.setdefault(host.service_name, host)
        if other is not host:
            raise InventoryError(
                f"hosts {other.name!r} ({other.source}) and {host.name!r} name the same "
                f"ovh_service {host.service_name!r}",
                path=host.source,
                key="ovh_service",
            )
