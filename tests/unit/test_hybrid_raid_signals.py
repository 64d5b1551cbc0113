"""Every source counts: the low-level parsers (device probe, wipefs, pvs, swaps, findmnt,
installed fstab) and the guard's findings from each, including where sources disagree.

Outputs are in the tools' own formats (util-linux 2.38, lvm2 2.03, as on Debian 12); the
signatures of ZFS, Ceph and bcache are as blkid and wipefs name them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet.plans.disks import (
    DeviceProbe,
    DiskRule,
    ParseError,
    Probe,
    Refused,
    Selection,
    Target,
    guard,
    parse_device_probe,
    parse_findmnt,
    parse_installed,
    parse_lsblk,
    parse_pvs,
    parse_swaps,
    parse_wipefs,
)
from tests.unit.hybrid_raid_layouts import hdd, lsblk, raid_part, stub, system

RAID1 = Target(1, "md4")


def blank(path: str) -> DeviceProbe:
    return DeviceProbe(path)


def probe(*hdds: dict[str, Any], low: dict[str, DeviceProbe] | None = None, **kw: Any) -> Probe:
    devices = parse_lsblk(lsblk(*system(rescue=True), *hdds))
    lowlevel = {n.path: blank(n.path) for d in devices if d.type == "disk" and d.rota
                for n in (d, *d.partitions)}  # fmt: skip
    lowlevel.update(low or {})
    return Probe(devices=devices, lowlevel=lowlevel, **kw)


def run(p: Probe, wipe: str = "") -> Selection:
    return guard(p, DiskRule(), RAID1, frozenset(wipe.split()))


def refusal(p: Probe, wipe: str = "") -> str:
    with pytest.raises(Refused) as info:
        run(p, wipe)
    return info.value.message


def sig(kind: str, offset: str = "0x0", **extra: str) -> dict[str, str]:
    return {"device": "sda", "offset": offset, "type": kind, **extra}


TWO = (hdd("sda", "A1"), hdd("sdb", "B1"))


# -- parsers ------------------------------------------------------------------------------------


def test_device_probe_sections_per_device() -> None:
    text = (
        "@@dev /dev/sda\n@@examine\n@@blkid\nDEVNAME=/dev/sda\nPTUUID=x\nPTTYPE=gpt\n@@rc 0\n"
        '@@wipefs\n{"signatures": [{"device": "sda", "offset": "0x200", "type": "gpt"}]}\n'
        "@@rc 0\n@@holders\n"
        "@@dev /dev/sda1\n@@examine\nMD_LEVEL=raid1\nMD_UUID=aa:bb\n@@blkid\n"
        "error: /dev/sda1: ambivalent result (probably more filesystems on the device)\n"
        "@@rc 8\n@@wipefs\nwipefs: error: /dev/sda1: probing initialization failed\n@@rc 1\n"
        "@@holders\nmd127\ndm-0\n@@bcache\n"
    )
    found = parse_device_probe(text)
    assert found["/dev/sda"].blkid_type == "gpt" and found["/dev/sda"].wipefs_types == ("gpt",)
    part = found["/dev/sda1"]
    assert part.blkid_rc == 8 and "ambivalent" in part.blkid_error
    assert part.wipefs == () and "probing initialization failed" in part.wipefs_error
    assert part.holders == ("md127", "dm-0") and part.bcache and "MD_UUID=aa:bb" in part.examine


def test_small_parsers() -> None:
    assert parse_wipefs('{"signatures": [\n\n]}') == () and parse_wipefs("") == ()
    with pytest.raises(ParseError):
        parse_wipefs("DEVICE OFFSET TYPE")
    swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2   partition\t1048572\t0\t-2\n"
    assert parse_swaps(swaps) == ("/dev/sdb2",)
    pvs = '{"report": [{"pv": [{"pv_name": "/dev/sdc1", "vg_name": "vg0"}]}]}'
    assert parse_pvs(pvs) == {"/dev/sdc1": "vg0"} and parse_pvs("") == {}
    mounts = json.dumps({"filesystems": [{"source": "/dev/sdd1[/srv]", "target": "/srv"}]})
    assert parse_findmnt(mounts) == (("/dev/sdd1", "/srv"),)
    fstabs = (
        "@@fstab /dev/sda2\n/dev/sda2 contains a linux_raid_member file system labelled 'md2'\n"
        "@@fstab /dev/md127\n# static\nUUID=r / ext4 defaults 0 1\nUUID=s none swap sw 0 0\n"
    )
    found = parse_installed(fstabs)
    assert list(found) == ["/dev/md127"] and [e.target for e in found["/dev/md127"]] == [
        "/",
        "none",
    ]


# -- each source on its own ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "label"),
    [("zfs_member", "tank"), ("ceph_bluestore", ""), ("bcache", ""), ("LVM2_member", ""),
     ("crypto_LUKS", ""), ("ntfs", "DATA")],
)  # fmt: skip
def test_a_signature_only_low_level_probes_see_is_data(kind: str, label: str) -> None:
    extra = {"LABEL": label} if label else {}
    low = {"/dev/sda": DeviceProbe("/dev/sda", blkid={"TYPE": kind, **extra}, blkid_rc=0,
                                   wipefs=(sig(kind),))}  # fmt: skip
    text = refusal(probe(*TWO, low=low))
    assert (
        f"sources disagree about /dev/sda (lsblk: nothing; mdadm --examine: nothing; "
        f"blkid -p: {kind}; wipefs -n: {kind})" in text
    )
    assert f"carries {kind} on the whole disk" in text
    assert run(probe(*TWO, low=low), wipe="A1").wipe_disks == ("/dev/sda",)


def test_wipefs_alone_finds_a_signature_blkid_missed() -> None:
    low = {"/dev/sda": DeviceProbe("/dev/sda", wipefs=(sig("zfs_member", "0x3f000"),))}
    assert "wipefs -n: zfs_member" in refusal(probe(*TWO, low=low))


def test_ambivalent_or_failed_probes_are_findings() -> None:
    ambivalent = {"/dev/sda": DeviceProbe("/dev/sda", blkid_rc=8, blkid_error="ambivalent")}
    assert "blkid -p: ambivalent: several signatures" in refusal(probe(*TWO, low=ambivalent))
    failed = {"/dev/sda": DeviceProbe("/dev/sda", wipefs_error="wipefs: cannot open /dev/sda")}
    assert "wipefs -n: failed: wipefs: cannot open" in refusal(probe(*TWO, low=failed))


def test_lvm_pv_bcache_and_stacked_holders() -> None:
    disks = (hdd("sda", "A1", raid_part("sda", fstype="LVM2_member")), hdd("sdb", "B1"))
    pv = {"/dev/sda1": DeviceProbe("/dev/sda1", blkid={"TYPE": "LVM2_member"}, blkid_rc=0,
                                   wipefs=(sig("LVM2_member", "0x218"),))}  # fmt: skip
    text = refusal(probe(*disks, low=pv, pvs={"/dev/sda1": "vg0"}))
    assert "/dev/sda1 is an LVM physical volume of VG vg0" in text
    assert run(probe(*disks, low=pv, pvs={"/dev/sda1": "vg0"}), wipe="A1").wiped == ("A1",)
    active = {"/dev/sda1": DeviceProbe("/dev/sda1", blkid={"TYPE": "LVM2_member"}, blkid_rc=0,
                                       wipefs=(sig("LVM2_member"),), holders=("dm-0",))}  # fmt: skip
    text = refusal(probe(*disks, low=active), wipe="A1")
    assert "/dev/sda1 is in use by dm-0 (stacked device): stop it first" in text
    assert "list its serial" not in text.split("dm-0")[1]
    cache = {"/dev/sda": DeviceProbe("/dev/sda", blkid={"TYPE": "bcache"}, blkid_rc=0,
                                     wipefs=(sig("bcache", "0x1018"),), bcache=True)}  # fmt: skip
    assert "/dev/sda is a bcache device" in refusal(probe(*TWO, low=cache))


def test_swap_in_use_makes_a_system_disk_and_other_mounts_are_never_wipeable() -> None:
    disks = (hdd("sda", "A1", raid_part("sda", fstype="swap")), hdd("sdb", "B1", stub("sdb")))
    low = {"/dev/sda1": DeviceProbe("/dev/sda1", blkid={"TYPE": "swap"}, blkid_rc=0,
                                    wipefs=(sig("swap", "0xff6"),))}  # fmt: skip
    text = refusal(probe(*disks, low=low, swaps=("/dev/sda1",)), wipe="A1 B1")
    assert (
        "(HGST HUS726040ALA610, serial A1, 4.0 TB): system disk: holds /dev/sda1, swap in use"
        in text
    )
    bind = refusal(probe(*disks, low=low, mounts=(("/dev/sdb1", "/srv"),)), wipe="A1 B1")
    assert "has /dev/sdb1 mounted at /srv" in bind


def test_an_empty_partition_table_is_data_but_a_blank_disk_is_not() -> None:
    table = hdd("sda", "A1", pttype="gpt")
    low = {"/dev/sda": DeviceProbe("/dev/sda", blkid={"PTTYPE": "gpt"}, blkid_rc=0,
                                   wipefs=(sig("gpt", "0x200"), sig("PMBR", "0x1fe")))}  # fmt: skip
    assert "carries an empty gpt partition table" in refusal(
        probe(table, hdd("sdb", "B1"), low=low)
    )
    assert run(probe(*TWO)).taken[0]["why"] == "sata disk, blank"


def test_stub_is_replaced_only_when_every_source_agrees_it_is_empty() -> None:
    disks = hdd("sda", "A1", stub("sda")), hdd("sdb", "B1", stub("sdb"))
    table = {f"/dev/{d}": DeviceProbe(f"/dev/{d}", blkid={"PTTYPE": "gpt"}, blkid_rc=0,
                                      wipefs=(sig("gpt", "0x200"), sig("PMBR", "0x1fe")))
             for d in ("sda", "sdb")}  # fmt: skip
    sel = run(probe(*disks, low=table))
    assert all("OVH's empty 511 MiB stub partition" in d["why"] for d in sel.taken)
    seen = {**table, "/dev/sda1": DeviceProbe("/dev/sda1", wipefs=(sig("vfat", "0x52"),))}
    text = refusal(probe(*disks, low=seen))
    assert (
        "sources disagree about /dev/sda1 (lsblk: nothing; mdadm --examine: nothing; "
        "blkid -p: nothing; wipefs -n: vfat)" in text
    )
    assert "has partition /dev/sda1 (OVH's 511 MiB stub partition, )" not in text
