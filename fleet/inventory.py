"""Hosts, groups and labels: the YAML loader, OVH enrichment and hybrid classification.

(The loader, enrichment and selection are being written; :class:`Host` is the stable record.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleet.transport.base import Endpoint


@dataclass(frozen=True)
class DiskSummary:
    """The classified disk groups of a server (from OVH's hardware specs)."""

    hybrid: bool
    system_type: str | None  # "NVME" or "SSD" for the group that carries the system
    hdd_count: int = 0
    hdd_size_gb: int = 0


@dataclass(frozen=True)
class Host:
    """One server as fleet sees it. Plain data: safe to pass to another process."""

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

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.address, self.port, self.user, self.key_file)

    @property
    def hybrid(self) -> bool:
        return bool(self.disks and self.disks.hybrid)
