"""The fake OVH API's catalogue: servers as specified, their boots, hardware and templates.

Boot ids differ per server and the customer rescue is never the first rescue entry (an iPXE
shell is), as on OVH; the hardware follows ``dedicated.server.HardwareSpecifications`` with the
newer extra field OVH serves (``defaultDiskGroupId``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fleet.sandbox.ovh_checks import Json

if TYPE_CHECKING:
    import random

Mode = Literal["disk", "rescue", "ipxe", "off"]

BOOT_TYPES = frozenset({"harddisk", "internal", "network", "power", "rescue"})

TEMPLATES = (
    "alma9_64",
    "byolinux_64",
    "debian11_64",
    "debian12_64",
    "debian13_64",
    "proxmox8_64",
    "rocky9_64",
    "ubuntu2204-server_64",
    "ubuntu2404-server_64",
)

#: What a kernel does to the server once a reboot lands on it.
MODE_OF_KERNEL: dict[str, Mode] = {
    "hd": "disk",
    "rescue12-customer": "rescue",
    "rescue-customer": "rescue",
    "ipxe-shell": "ipxe",
    "poweroff": "off",
}

_REGIONS = {
    "gra": "eu-west-gra",
    "rbx": "eu-west-rbx",
    "sbg": "eu-west-sbg",
    "eri": "eu-west-eri",
    "lim": "eu-central-lim",
    "waw": "eu-central-waw",
    "bhs": "ca-east-bhs",
    "hil": "us-west-or",
    "vin": "us-east-va",
    "sgp": "ap-southeast-sgp",
    "syd": "ap-southeast-syd",
}


@dataclass
class ServerSpec:
    """One server of the sandbox. ``system_disk_type`` is the system group's type (NVME or SSD)."""

    name: str
    ip: str
    datacenter: str
    rack: str
    hybrid: bool
    hdd_count: int = 2
    hdd_size_gb: int = 4000
    nvme_size_gb: int = 960
    os: str = "debian12_64"
    reverse: str | None = None
    system_disk_type: str = "NVME"


@dataclass(frozen=True)
class Boot:
    id: int
    type: str
    kernel: str
    description: str

    def to_json(self) -> Json:
        return {
            "bootId": self.id,
            "bootType": self.type,
            "description": self.description,
            "kernel": self.kernel,
        }


def region(datacenter: str) -> str:
    prefix = "".join(ch for ch in datacenter if ch.isalpha())
    return _REGIONS.get(prefix, f"eu-west-{prefix}")


def make_boots(rng: random.Random) -> list[Boot]:
    """The server's boots, ids ascending from a random base; an iPXE shell is the first rescue."""
    customer = [
        ("rescue", "rescue12-customer", "Rescue12-customer (Debian 12)"),
        ("rescue", "rescue-customer", "Rescue (customer)"),
    ]
    rng.shuffle(customer)
    kinds = [
        ("harddisk", "hd", "Boot from the hard disk"),
        ("rescue", "ipxe-shell", "iPXE shell"),
        *customer,
        ("power", "poweroff", "Power off the server"),
    ]
    next_id = rng.randint(2, 4000)
    boots = []
    for boot_type, kernel, description in kinds:
        boots.append(Boot(next_id, boot_type, kernel, description))
        next_id += rng.randint(1, 97)
    return boots


def _disk_group(group_id: int, disk_type: str, count: int, size_gb: int) -> Json:
    return {
        "diskGroupId": group_id,
        "diskType": disk_type,
        "numberOfDisks": count,
        "diskSize": {"unit": "GB", "value": size_gb},
        "description": f"{count} X Disk {disk_type} {size_gb} GB, JBOD",
        "raidController": None,
        "defaultHardwareRaidType": None,
        "defaultHardwareRaidSize": None,
    }


def hardware_json(spec: ServerSpec) -> Json:
    """``dedicated.server.HardwareSpecifications`` for a spec, with OVH's newer extra field."""
    groups = [_disk_group(1, spec.system_disk_type, 2, spec.nvme_size_gb)]
    if spec.hybrid:
        groups.append(_disk_group(2, "HDD", spec.hdd_count, spec.hdd_size_gb))
    return {
        "bootMode": "uefi",
        "coresPerProcessor": 16,
        "threadsPerProcessor": 32,
        "numberOfProcessors": 1,
        "processorName": "AMD EPYC 4344P",
        "processorArchitecture": "x86_64",
        "description": "SCALE-a1" if spec.hybrid else "ADVANCE-1",
        "motherboard": "ASRockRack B665D4U-1L",
        "formFactor": "1u",
        "memorySize": {"unit": "MB", "value": 131072},
        "defaultHardwareRaidType": None,
        "defaultHardwareRaidSize": None,
        "expansionCards": None,
        "usbKeys": None,
        "defaultDiskGroupId": 1,
        "diskGroups": groups,
    }
