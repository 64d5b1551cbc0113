"""Parsers of the hybrid-raid plan on outputs in the real formats (tests/data/hybrid_raid/).

The layouts follow OVH's (NVMe system pair on md RAID1, md1 with 0.90 metadata, arrays renamed
md125-md127 in rescue, HDD stub partitions of 511 MiB).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.plans.disks import (
    STUB_PARTITION_BYTES,
    ParseError,
    human,
    parse_blkid,
    parse_detail_scan,
    parse_examine,
    parse_lsblk,
    parse_mdstat,
    partition_path,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "hybrid_raid"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_lsblk_tree_of_a_live_ovh_server() -> None:
    devices = parse_lsblk(read("live-stub.lsblk.json"))
    assert [d.name for d in devices] == ["nvme0n1", "nvme1n1", "sda", "sdb"]
    nvme, _, sda, _ = devices
    assert nvme.solid_state and not sda.solid_state
    assert (sda.rota, sda.tran, sda.serial, sda.size) == (True, "sata", "K4GH1ABB", 4000787030016)
    assert [p.name for p in nvme.partitions] == [f"nvme0n1p{i}" for i in range(1, 6)]
    root = [n for n in nvme.walk() if n.mountpoint == "/"]
    assert [(n.name, n.type, n.fstype) for n in root] == [("md3", "raid1", "ext4")]
    assert sda.partitions[0].size == STUB_PARTITION_BYTES
    assert sda.partitions[0].fstype == "" and sda.partitions[0].mountpoint == ""
    assert "HGST HUS726040ALA610, serial K4GH1ABB, 4.0 TB" in sda.describe()


def test_lsblk_in_rescue_has_renamed_arrays_and_no_mounts() -> None:
    devices = parse_lsblk(read("rescue-md1-blank.lsblk.json"))
    nodes = [n for d in devices for n in d.walk()]
    assert not [n for n in nodes if n.mountpoint]
    arrays = sorted({n.name for n in nodes if n.type.startswith("raid")})
    assert arrays == ["md125", "md126", "md127"]
    assert devices[2].children == ()


def test_lsblk_older_util_linux_strings_and_mountpoints_list() -> None:
    text = json.dumps(
        {
            "blockdevices": [
                {"name": "sdc", "size": "3000592982016", "type": "disk", "rota": "1",
                 "serial": " WD-WCC4N1 ", "children": [
                    {"name": "sdc1", "size": "1000", "type": "part", "rota": "1",
                     "mountpoints": [None, "/srv"]}]},
                {"name": "sdd", "size": 10, "type": "disk", "rota": "0"},
            ]
        }
    )  # fmt: skip
    sdc, sdd = parse_lsblk(text)
    assert (sdc.path, sdc.size, sdc.rota, sdc.serial) == (
        "/dev/sdc",
        3000592982016,
        True,
        "WD-WCC4N1",
    )
    assert sdc.partitions[0].mountpoint == "/srv"
    assert not sdd.rota and sdd.solid_state


@pytest.mark.parametrize(
    "text", ["", "not json", '{"devices": []}', '{"blockdevices": {}}',
             '{"blockdevices": [{"name": "sda", "size": "3.7T", "type": "disk"}]}']
)  # fmt: skip
def test_lsblk_garbage_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_lsblk(text)


def test_mdstat_rescue_with_metadata_090_md1_and_renamed_arrays() -> None:
    arrays = {a.name: a for a in parse_mdstat(read("rescue-md1.mdstat"))}
    assert sorted(arrays) == ["md125", "md126", "md127"]
    md1 = arrays["md125"]
    assert (md1.active, md1.level, md1.metadata, md1.blocks) == (True, "raid1", "0.90", 523200)
    assert [(m.name, m.slot) for m in md1.members] == [("nvme1n1p1", 1), ("nvme0n1p1", 0)]
    assert arrays["md126"].read_only and arrays["md126"].metadata == "1.2"
    root = arrays["md127"]
    assert (root.raid_disks, root.working_disks, root.status, root.degraded) == (2, 2, "UU", False)
    assert root.size_bytes == 436635648 * 1024


def test_mdstat_degraded_failed_spare_inactive_and_progress() -> None:
    arrays = {a.name: a for a in parse_mdstat(read("mixed.mdstat"))}
    assert arrays["md4"].level == "raid0" and not arrays["md4"].degraded
    assert arrays["md4"].status == "" and arrays["md4"].metadata == "1.2"
    md5 = arrays["md5"]
    assert (md5.level, md5.status, md5.degraded, md5.progress) == (
        "raid5",
        "UU_",
        True,
        "recovery=8.1%",
    )
    assert arrays["md6"].progress == "resync=0.4%" and not arrays["md6"].degraded
    md3 = arrays["md3"]
    assert md3.degraded and [m.failed for m in md3.members] == [False, True]
    inactive = arrays["md127"]
    assert (inactive.active, inactive.level, inactive.metadata) == (False, "", "1.2")
    assert [(m.name, m.flags) for m in inactive.members] == [("sdj1", "S")]
    md2 = arrays["md2"]
    assert md2.read_only and md2.progress == "resync=PENDING" and md2.members[1].flags == "S"


def test_mdstat_without_arrays() -> None:
    text = "Personalities : \nunused devices: <none>\n"
    assert parse_mdstat(text) == ()
    assert parse_mdstat("") == ()


def test_mdstat_member_in_unknown_shape_is_refused() -> None:
    with pytest.raises(ParseError, match="sda1"):
        parse_mdstat("md4 : active raid1 sda1 sdb1[1]\n      100 blocks super 1.2 [2/2] [UU]\n")


def test_detail_scan_lines() -> None:
    lines = parse_detail_scan(read("rescue.scan"))
    assert [(s.device, s.metadata, s.name, s.active) for s in lines] == [
        ("/dev/md125", "0.90", "", True),
        ("/dev/md/md2", "1.2", "md2", True),
        ("/dev/md/md3", "1.2", "md3", True),
        ("/dev/md/0", "1.2", "rescue:0", True),
        ("/dev/md127", "1.2", "rescue:0", False),
        ("/dev/md/md4", "1.2", "md4", True),
    ]
    assert lines[3].uuid == "7d45838b:7886c766:5802452c:653f8cca"  # lower-cased
    assert lines[3].extra == {"spares": "1"}


def test_detail_scan_without_uuid_is_refused() -> None:
    with pytest.raises(ParseError, match="UUID"):
        parse_detail_scan("ARRAY /dev/md4 metadata=1.2 name=md4\n")
    assert parse_detail_scan("") == ()


def test_examine_export_and_human_formats() -> None:
    md4 = parse_examine(read("sda1-md4.examine-export"))
    assert md4 is not None
    assert (md4.uuid, md4.level, md4.devices, md4.name) == (
        "0a1b2c3d:4e5f6a7b:8c9d0e1f:2a3b4c5d", "raid1", 2, "md4")  # fmt: skip
    assert md4.named("md4") and not md4.named("md")
    md1 = parse_examine(read("nvme0n1p1-md1.examine-export"))
    assert md1 is not None and md1.name == "" and md1.level == "raid1"
    rescue = parse_examine(read("sdb1-rescue.examine"))
    assert rescue is not None
    assert (rescue.uuid, rescue.level, rescue.devices, rescue.name) == (
        "7d45838b:7886c766:5802452c:653f8cca", "raid1", 2, "rescue:0")  # fmt: skip
    assert rescue.named("0") and not rescue.named("md4")


def test_examine_of_a_partition_table_or_nothing_is_no_superblock() -> None:
    assert parse_examine(read("sda-mbr.examine")) is None
    assert parse_examine("") is None
    assert parse_examine("mdadm: No md superblock detected on /dev/sda.\n") is None


def test_blkid_export_blocks() -> None:
    found = parse_blkid(read("rescue.blkid"))
    assert sorted(found) == ["/dev/md125", "/dev/md127", "/dev/nvme0n1p1", "/dev/nvme0n1p5"]
    assert found["/dev/md125"]["LABEL"] == "EFI_SYSPART"
    assert found["/dev/nvme0n1p5"]["TYPE"] == "iso9660"
    assert parse_blkid("") == {}


def test_partition_paths_and_sizes() -> None:
    assert partition_path("/dev/sda") == "/dev/sda1"
    assert partition_path("/dev/nvme0n1") == "/dev/nvme0n1p1"
    assert partition_path("/dev/mmcblk0", 2) == "/dev/mmcblk0p2"
    assert human(4000787030016) == "4.0 TB" and human(512) == "512 B"
    assert human(STUB_PARTITION_BYTES) == "535.8 MB"


def test_detail_scan_of_mdadm_4_2_puts_the_name_last() -> None:
    # as mdadm 4.2 (Debian 12) prints it in the VM images' provisioning, two spaces included
    text = (
        "ARRAY /dev/md/md2  metadata=1.2 UUID=59bd5761:637edf9c:c4ef3788:6a950d2b name=md2\n"
        "ARRAY /dev/md/md3  metadata=1.2 UUID=24be8383:2b876057:15c9baf6:6c5e898c name=md3\n"
    )
    md2, md3 = parse_detail_scan(text)
    assert (md2.device, md2.name, md2.uuid) == (
        "/dev/md/md2",
        "md2",
        "59bd5761:637edf9c:c4ef3788:6a950d2b",
    )
    assert (md3.metadata, md3.name, md3.extra) == ("1.2", "md3", {})
