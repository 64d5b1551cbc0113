"""OVH hybrid-server disk layouts as ``lsblk -J -b`` data (see ../shared/ovh/server-layout.md).

Two NVMe disks carry the installed system: p1 the 511 MiB ESP ``EFI_SYSPART``, p2 /boot (md2),
p3 / (md3), p4 swap, and on the first disk a 2 MiB ``config-2`` drive. Newer installs mirror the
ESP as md1 (metadata 0.90). In rescue the arrays come up as md125-md127 and nothing is mounted.
"""

from __future__ import annotations

import json
from typing import Any

from fleet.plans.disks import LINUX_RAID_PARTTYPE, STUB_PARTITION_BYTES

ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
LINUX_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"
SWAP_TYPE = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
NVME_BYTES = 450_098_159_616
HDD_BYTES = 4_000_787_030_016
ROOT_UUID = "3f2e1d0c-b9a8-4765-8432-10fedcba9876"


def node(name: str, size: int, kind: str, **fields: Any) -> dict[str, Any]:
    """One lsblk node, every requested column present (null when empty), like util-linux 2.38."""
    data: dict[str, Any] = {
        "name": name, "path": f"/dev/{name}", "size": size, "type": kind,
        "rota": fields.pop("rota", False), "tran": None, "model": None, "serial": None,
        "fstype": None, "label": None, "uuid": None, "parttype": None, "mountpoint": None,
        "pkname": fields.pop("pkname", None),
    }  # fmt: skip
    children = fields.pop("children", None)
    data.update(fields)
    if children:
        data["children"] = children
        if kind == "disk":  # a disk with partitions has a partition table
            data.setdefault("pttype", "gpt")
    return data


def md(name: str, size: int, level: str = "raid1", **fields: Any) -> dict[str, Any]:
    return node(name, size, level, **fields)


def nvme(index: int, *, rescue: bool, md1: bool) -> dict[str, Any]:
    """One NVMe system disk; ``rescue`` renames the arrays and unmounts everything."""
    disk = f"nvme{index}n1"
    names = {"md1": "md125", "md2": "md126", "md3": "md127"} if rescue else {}
    mounts = {} if rescue else {"md1": "/boot/efi", "md2": "/boot", "md3": "/"}

    def array(key: str, size: int, fstype: str, **extra: Any) -> dict[str, Any]:
        return md(names.get(key, key), size, fstype=fstype, mountpoint=mounts.get(key), **extra)

    if md1:
        esp_children = [array("md1", 535_756_800, "vfat", label="EFI_SYSPART", uuid="A1B2-C3D4")]
        esp = node(f"{disk}p1", STUB_PARTITION_BYTES, "part", parttype=ESP_TYPE,
                   fstype="linux_raid_member", pkname=disk, children=esp_children)  # fmt: skip
    else:
        mount = "/boot/efi" if index == 0 and not rescue else None
        esp = node(f"{disk}p1", STUB_PARTITION_BYTES, "part", parttype=ESP_TYPE, fstype="vfat",
                   label="EFI_SYSPART", mountpoint=mount, pkname=disk)  # fmt: skip
    parts = [
        esp,
        node(f"{disk}p2", 1_072_693_248, "part", parttype=LINUX_TYPE, fstype="linux_raid_member",
             pkname=disk, children=[array("md2", 1_071_644_672, "ext4")]),
        node(f"{disk}p3", 447_909_117_952, "part", parttype=LINUX_TYPE,
             fstype="linux_raid_member", pkname=disk,
             children=[array("md3", 447_114_903_552, "ext4", uuid=ROOT_UUID)]),
        node(f"{disk}p4", 536_870_912, "part", parttype=SWAP_TYPE, fstype="swap",
             label=f"swap-{disk}p4", mountpoint=None if rescue else "[SWAP]", pkname=disk),
    ]  # fmt: skip
    if index == 0:
        parts.append(node(f"{disk}p5", 2_097_152, "part", fstype="iso9660", label="config-2",
                          pkname=disk))  # fmt: skip
    return node(disk, NVME_BYTES, "disk", tran="nvme", model="SAMSUNG MZQL2960HCJR-00A07",
                serial=f"S64FNE0R10{index}", children=parts)  # fmt: skip


def hdd(name: str, serial: str, *parts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "HGST HUS726040ALA610")
    fields.setdefault("size", HDD_BYTES)
    size = fields.pop("size")
    return node(name, size, "disk", rota=True, tran="sata", serial=serial,
                children=list(parts) or None, **fields)  # fmt: skip


def stub(disk: str, **fields: Any) -> dict[str, Any]:
    """OVH's leftover 511 MiB partition (the seed's ``primary boot`` partition)."""
    return node(f"{disk}1", STUB_PARTITION_BYTES, "part", parttype=ESP_TYPE, pkname=disk, **fields)


def raid_part(disk: str, *children: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Our layout: one Linux-RAID partition over the whole disk."""
    fields.setdefault("fstype", "linux_raid_member" if children else None)
    fields.setdefault("parttype", LINUX_RAID_PARTTYPE)
    return node(f"{disk}1", HDD_BYTES - 2 * 1024 * 1024, "part",
                pkname=disk, children=list(children) or None, **fields)  # fmt: skip


def lsblk(*disks: dict[str, Any]) -> str:
    return json.dumps({"blockdevices": list(disks)}, indent=3)


def system(*, rescue: bool = True, md1: bool = True) -> list[dict[str, Any]]:
    return [nvme(0, rescue=rescue, md1=md1), nvme(1, rescue=rescue, md1=md1)]
