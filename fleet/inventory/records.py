"""Host, disk summary and inventory records: plain data, JSON round-trips, table rows."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from fleet.errors import InventoryError, UsageError
from fleet.inventory.problems import suggest
from fleet.transport.base import Endpoint, parse_jump

#: Columns of :meth:`Inventory.table_rows`, in display order.
TABLE_COLUMNS = (
    "name", "address", "port", "user", "datacenter", "rack", "groups", "labels", "hybrid",
    "disks", "source",
)  # fmt: skip


@dataclass(frozen=True)
class DiskSummary:
    """The classified disk groups of a server (from OVH's hardware specs).

    ``hdd_size_gb`` is the size of one rotational disk (the smallest when groups differ, since an
    array across them is bounded by it); ``hdd_total_gb`` is their raw sum.
    """

    hybrid: bool
    system_type: str | None  # "NVME" or "SSD" for the group that carries the system
    hdd_count: int = 0
    hdd_size_gb: int = 0
    system_count: int = 0
    system_size_gb: int = 0
    hdd_total_gb: int = 0
    description: str = ""  # e.g. "2x960GB NVME + 4x8000GB HDD"
    kinds: tuple[str, ...] = ()  # the kinds present, in "NVME", "SSD", "HDD" order


@dataclass(frozen=True)
class Host:
    """One server as fleet sees it. Plain data: safe to pass to another process.

    ``vars`` are the host's variables as ``ansible-inventory --list`` shows them (nested values
    may be shared between hosts: treat them as read-only). ``address``, ``port``, ``user`` and
    ``key_file`` come from Ansible's connection variables, ``service_name``, ``datacenter``,
    ``rack`` and ``labels`` from the ``fleet:`` mapping, ``bastion``, ``connect_timeout``,
    ``command_timeout`` and ``sudo_password`` from it or Ansible's spellings (see
    :mod:`fleet.inventory.connection`); ``disks`` and ``model`` from the OVH API
    (see :func:`enrich`). ``unsupported`` names the connection settings of this host that fleet
    cannot honour (a password, a proxy...): :meth:`Inventory.check_connectable` refuses it.
    ``address`` is empty only for a host built from the OVH API before its IP is known.
    """

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    service_name: str | None = None  # OVH service name (nsXXXX.ip-...)
    datacenter: str | None = None
    rack: str | None = None
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    disks: DiskSummary | None = None
    source: str | None = None  # file (and line) or "ovh"
    model: str | None = None  # OVH's hardware description, e.g. "SCALE-a1"
    unsupported: tuple[str, ...] = ()
    bastion: str | None = None  # OpenSSH ProxyJump value: [user@]host[:port][,...]
    connect_timeout: float | None = None  # seconds; None: the ssh.connect_timeout setting
    command_timeout: float | None = None  # seconds a step's command may run, unless it says
    sudo_password: str | None = None  # where the sudo password is read: env:NAME / file:PATH

    @property
    def endpoint(self) -> Endpoint:
        """Where and how to connect, the bastion chain included (its hops log in as this
        host's user with its key unless the ProxyJump value names another user)."""
        gateway = (
            parse_jump(self.bastion, user=self.user, key_file=self.key_file)
            if self.bastion
            else None
        )
        return Endpoint(
            self.name,
            self.address,
            self.port,
            self.user,
            self.key_file,
            gateway=gateway,
            connect_timeout=self.connect_timeout,
            sudo_password=self.sudo_password,
        )

    @property
    def hybrid(self) -> bool:
        return bool(self.disks and self.disks.hybrid)

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-safe data (``labels`` and ``vars`` themselves, not copies: treat
        them as read-only); :meth:`from_dict` reverses it."""
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key_file": self.key_file,
            "service_name": self.service_name,
            "datacenter": self.datacenter,
            "rack": self.rack,
            "groups": list(self.groups),
            "labels": self.labels,
            "vars": self.vars,
            "disks": None if self.disks is None else asdict(self.disks),
            "source": self.source,
            "model": self.model,
            "unsupported": list(self.unsupported),
            "bastion": self.bastion,
            "connect_timeout": self.connect_timeout,
            "command_timeout": self.command_timeout,
            "sudo_password": self.sudo_password,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Host:
        """Rebuild a host from :meth:`to_dict` output (for instance in another process)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InventoryError(f"unknown host record keys: {', '.join(unknown)}", path="<host>")
        values = dict(data)
        try:
            if values.get("disks") is not None:
                disks = dict(values["disks"])
                disks["kinds"] = tuple(disks.get("kinds", ()))
                values["disks"] = DiskSummary(**disks)
            values["groups"] = tuple(values.get("groups", ()))
            values["unsupported"] = tuple(values.get("unsupported", ()))
            values["labels"] = dict(values.get("labels", {}))
            values["vars"] = copy.deepcopy(dict(values.get("vars", {})))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InventoryError(f"bad host record: {exc}", path="<host>") from exc


_HOST_DEFAULTS = {f.name: f.default for f in fields(Host) if f.default is not MISSING}


def make_host(values: dict[str, Any]) -> Host:
    """``Host(**values)``, ten times faster: the loader makes one per host (tens of thousands),
    and a frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``. The
    values must be complete and checked (the loader's are); tests compare it with ``Host()``."""
    host = object.__new__(Host)
    host.__dict__.update(_HOST_DEFAULTS)
    host.__dict__.update(values)
    return host


@dataclass(frozen=True)
class Inventory:
    """Hosts in inventory order, and each group's member host names (children included).

    ``direct`` and ``children`` keep, per group, its own hosts and its child groups in the order
    the files added them: the order Ansible's subscripts (``web[0]``) count in. Without them
    (an inventory built from the OVH API), a group's members are its own hosts.
    """

    hosts: tuple[Host, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    direct: dict[str, tuple[str, ...]] = field(default_factory=dict)
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for host in self.hosts:
            if host.name in seen:
                raise InventoryError(f"host {host.name!r} appears twice", path=host.source)
            seen.add(host.name)

    @cached_property
    def _by_name(self) -> dict[str, Host]:
        return {host.name: host for host in self.hosts}

    def get(self, name: str) -> Host | None:
        """The host called ``name``, or None."""
        return self._by_name.get(name)

    def require(self, name: str) -> Host:
        """The host called ``name``; a :class:`UsageError` with suggestions if there is none."""
        host = self.get(name)
        if host is None:
            raise UsageError(
                f"no host {name!r} in the inventory", hint=suggest(name, self._by_name)
            )
        return host

    def select(self, limit: str | None, flag: str = "--limit") -> list[Host]:
        """Hosts chosen by a ``--limit`` expression (see :mod:`fleet.inventory.select`);
        None = all; a given limit that selects no host is a usage error naming ``flag``."""
        from fleet.inventory.select import select_hosts

        return select_hosts(self, limit, flag)

    def check_connectable(self, hosts: Sequence[Host] | None = None) -> None:
        """Refuse hosts fleet cannot connect to as their inventory says (see
        :attr:`Host.unsupported`): before a command that connects, never after."""
        refused = [host for host in (self.hosts if hosts is None else hosts) if host.unsupported]
        if refused:
            host = refused[0]
            more = f" (and {len(refused) - 1} more hosts)" if len(refused) > 1 else ""
            raise InventoryError(
                f"host {host.name!r}: {'; '.join(host.unsupported)}{more}",
                path=host.source,
                hint=f"leave such hosts out with --limit '!{host.name}', or change their "
                "variables for fleet",
            )

    def check_addresses(self) -> None:
        """Refuse hosts whose address must still come from the OVH API (see :func:`enrich`)."""
        missing = [host for host in self.hosts if not host.address]
        if missing:
            names = ", ".join(host.name for host in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InventoryError(
                f"no address yet for {names}{more}",
                path=missing[0].source,
                hint="their address comes from the OVH API: enrich the inventory, or set address:",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data: ``{"hosts": [...], "groups": {...}, "direct": ..., "children": ...}``."""
        return {
            "hosts": [host.to_dict() for host in self.hosts],
            "groups": {name: list(members) for name, members in self.groups.items()},
            "direct": {name: list(members) for name, members in self.direct.items()},
            "children": {name: list(members) for name, members in self.children.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inventory:
        hosts = tuple(Host.from_dict(item) for item in data.get("hosts", ()))
        tables = [
            {str(name): tuple(members) for name, members in data.get(table, {}).items()}
            for table in ("groups", "direct", "children")
        ]
        return cls(hosts, *tables)

    def table_rows(self) -> list[dict[str, str]]:
        """One row of display strings per host, keyed by :data:`TABLE_COLUMNS`."""
        return [_table_row(host) for host in self.hosts]


def _table_row(host: Host) -> dict[str, str]:
    disks = host.disks
    return {
        "name": host.name,
        "address": host.address or "-",
        "port": str(host.port),
        "user": host.user,
        "datacenter": host.datacenter or "-",
        "rack": host.rack or "-",
        "groups": ",".join(host.groups) or "-",
        "labels": ",".join(f"{key}={value}" for key, value in sorted(host.labels.items())) or "-",
        "hybrid": "?" if disks is None else ("yes" if disks.hybrid else "no"),
        "disks": disks.description if disks and disks.description else "-",
        "source": host.source or "-",
    }
