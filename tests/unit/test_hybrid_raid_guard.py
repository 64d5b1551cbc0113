"""Disk selection and every guard refusal of the hybrid-raid plan, on OVH layouts."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.plans.disks import (
    DiskRule,
    Ownership,
    Probe,
    Refused,
    Selection,
    Superblock,
    Target,
    guard,
    owner_marker,
    parse_lsblk,
    parse_mdstat,
    system_disks,
    usable_bytes,
)
from tests.unit.hybrid_raid_layouts import (
    HDD_BYTES,
    hdd,
    lsblk,
    md,
    raid_part,
    stub,
    system,
)

RAID1 = Target(level=1, md_name="md4")
RESCUE_MDSTAT = """\
md125 : active raid1 nvme1n1p1[1] nvme0n1p1[0]
      523200 blocks [2/2] [UU]
md126 : active raid1 nvme0n1p2[0] nvme1n1p2[1]
      1046528 blocks super 1.2 [2/2] [UU]
md127 : active raid1 nvme0n1p3[0] nvme1n1p3[1]
      436635648 blocks super 1.2 [2/2] [UU]
"""
OURS = "0a1b2c3d:4e5f6a7b:8c9d0e1f:2a3b4c5d"


def probe(
    *hdds: dict[str, Any],
    mdstat: str = RESCUE_MDSTAT,
    examine: dict[str, Superblock] | None = None,
    rescue: bool = True,
) -> Probe:
    devices = parse_lsblk(lsblk(*system(rescue=rescue), *hdds))
    return Probe(devices=devices, mdstat=parse_mdstat(mdstat), examine=examine or {})


#: This host's ownership: fleet recorded the array OURS for it.
OWNED = Ownership(frozenset({OURS}), owner_marker("ns1.ip-203-0-113.eu", "md4", 1))


def run(
    p: Probe,
    target: Target = RAID1,
    rule: DiskRule | None = None,
    wipe: str = "",
    owner: Ownership = OWNED,
) -> Selection:
    return guard(p, rule or DiskRule(), target, frozenset(wipe.split()), owner)


def refusal(p: Probe, **kw: Any) -> str:
    with pytest.raises(Refused) as info:
        run(p, **kw)
    return info.value.message


def blank() -> tuple[dict[str, Any], dict[str, Any]]:
    return hdd("sda", "K4GH2BBB"), hdd("sdb", "K4GH1AAA")


def test_blank_hdds_are_chosen_in_serial_order_and_nvme_never() -> None:
    sel = run(probe(*blank()))
    assert [d.path for d in sel.disks] == ["/dev/sdb", "/dev/sda"]  # by serial
    assert sel.members == ("/dev/sdb1", "/dev/sda1")
    assert not sel.existing_uuid and not sel.wiped and not sel.wipe_disks
    assert [s.split(" ")[0] for s in sel.system] == ["/dev/nvme0n1", "/dev/nvme1n1"]
    assert [(d["path"], d["why"]) for d in sel.taken] == [
        ("/dev/sdb", "sata disk, blank"), ("/dev/sda", "sata disk, blank")]  # fmt: skip
    assert [d["path"] for d in sel.refused] == ["/dev/nvme0n1", "/dev/nvme1n1"]
    assert sel.refused[0]["why"].startswith("system disk: holds the EFI system partition")


def test_system_disks_by_mount_in_live_mode_and_by_array_closure() -> None:
    live = probe(*blank(), mdstat="", rescue=False)
    assert system_disks(live)["nvme0n1"] == "holds /dev/md1 mounted at /boot/efi"
    assert "mounted at /boot" in system_disks(live)["nvme1n1"]
    # an HDD holding a member of the NVMe root array is a system disk too
    hdd_in_root = hdd("sdc", "K4GH3CCC", raid_part("sdc", md("md127", 10)))
    mdstat = RESCUE_MDSTAT.replace("nvme1n1p3[1]", "nvme1n1p3[1] sdc1[2]")
    why = system_disks(probe(*blank(), hdd_in_root, mdstat=mdstat))
    assert why["sdc"] == "holds a member of /dev/md127 together with system disk nvme0n1"


def test_system_closure_also_through_unassembled_superblocks() -> None:
    sb = Superblock("aa:bb:cc:dd", "raid1", 3)
    examine = {"/dev/nvme0n1p3": sb, "/dev/nvme1n1p3": sb, "/dev/sdc1": sb}
    why = system_disks(probe(hdd("sdc", "X", raid_part("sdc")), mdstat="", examine=examine))
    assert why["sdc"].startswith("holds a member of array UUID aa:bb:cc:dd")


def test_ovh_empty_stub_partition_is_not_data_and_is_replaced() -> None:
    disks = hdd("sda", "K4GH2BBB", stub("sda")), hdd("sdb", "K4GH1AAA", stub("sdb"))
    sel = run(probe(*disks))
    assert not sel.wiped and not sel.wipe_disks
    assert "OVH's empty 511 MiB stub partition (not data): replaced" in sel.taken[0]["why"]


def test_a_stub_partition_holding_anything_is_data() -> None:
    disks = (
        hdd("sda", "K4GH2BBB", stub("sda", fstype="ext4", label="OLD")),
        hdd("sdb", "K4GH1AAA", stub("sdb")),
    )
    text = refusal(probe(*disks))
    assert "/dev/sda (HGST HUS726040ALA610, serial K4GH2BBB, 4.0 TB)" in text
    assert (
        "has partition /dev/sda1 (OVH's 511 MiB stub partition, ext4 'OLD': only an empty stub "
        "is replaced without `wipe`)"
    ) in text
    assert "list its serial in `wipe`" in text and "serial K4GH1AAA" not in text
    sel = run(probe(*disks), wipe="K4GH2BBB OTHER")
    assert sel.wiped == ("K4GH2BBB",) and sel.wipe_disks == ("/dev/sda",)
    assert sel.taken[1]["why"].startswith("wipe lists its serial; destroys: has partition")


def test_an_efi_system_partition_makes_a_system_disk_whatever_wipe_says() -> None:
    disks = (
        hdd("sda", "K4GH2BBB", stub("sda", fstype="vfat", label="EFI_SYSPART")),
        hdd("sdb", "K4GH1AAA"), hdd("sdc", "K4GH3CCC"),
    )  # fmt: skip
    sel = run(probe(*disks), wipe="K4GH2BBB K4GH1AAA K4GH3CCC")
    assert [d.serial for d in sel.disks] == ["K4GH1AAA", "K4GH3CCC"]
    assert (
        "/dev/sda (HGST HUS726040ALA610, serial K4GH2BBB, 4.0 TB): holds the EFI system "
        "partition /dev/sda1" in sel.system
    )


def test_filesystem_on_whole_disk_or_partition_is_refused() -> None:
    whole = hdd("sda", "K4GH2BBB", fstype="xfs", label="backup")
    assert "carries xfs 'backup' on the whole disk" in refusal(probe(whole, hdd("sdb", "K4GH1AAA")))
    part = hdd("sda", "K4GH2BBB", raid_part("sda", fstype="ext4", label="old"))
    assert "has partition /dev/sda1 (4.0 TB, ext4 'old')" in refusal(
        probe(part, hdd("sdb", "K4GH1AAA"))
    )


def test_any_other_data_partition_is_refused() -> None:
    two = hdd(
        "sda", "K4GH2BBB", stub("sda"), raid_part("sda") | {"name": "sda2", "path": "/dev/sda2"}
    )
    text = refusal(probe(two, hdd("sdb", "K4GH1AAA")))
    assert "/dev/sda1" in text and "/dev/sda2" in text


def test_mounted_disk_is_refused_even_when_wipe_lists_it() -> None:
    mounted = hdd("sda", "K4GH2BBB", stub("sda", fstype="ext4", mountpoint="/srv"))
    text = refusal(probe(mounted, hdd("sdb", "K4GH1AAA")), wipe="K4GH2BBB")
    assert "has /dev/sda1 mounted at /srv" in text
    assert "list its serial" not in text


def test_md_superblock_is_refused_and_wipe_allows_it() -> None:
    foreign = {"/dev/sda1": Superblock("7d:45:83:8b", "raid1", 2, "rescue:0")}
    disks = hdd("sda", "K4GH2BBB", raid_part("sda")), hdd("sdb", "K4GH1AAA")
    text = refusal(probe(*disks, mdstat="", examine=foreign))
    assert (
        "a member of array 'rescue:0' (UUID 7d:45:83:8b, raid1, 2 devices; members /dev/sda1 "
        "[serial K4GH2BBB]; not assembled; superblock state unknown), not created by fleet"
    ) in text
    assert run(probe(*disks, mdstat="", examine=foreign), wipe="K4GH2BBB").wiped == ("K4GH2BBB",)
    whole = {"/dev/sdb": Superblock("01:02:03:04", "raid0", 2, "md4")}
    assert "members /dev/sdb [serial K4GH1AAA]" in refusal(
        probe(*blank(), mdstat="", examine=whole)
    )


def test_active_member_of_another_array() -> None:
    disks = (
        hdd("sda", "K4GH2BBB", raid_part("sda", md("md0", 10))),
        hdd("sdb", "K4GH1AAA"),
        hdd("sdc", "SMALL", raid_part("sdc", md("md0", 10)), size=500_000_000_000),
    )
    mdstat = (
        RESCUE_MDSTAT + "md0 : active raid1 sda1[0] sdc1[1]\n      10 blocks super 1.2 [2/2] [UU]\n"
    )
    rule = DiskRule(min_size=1_000_000_000_000)
    text = refusal(probe(*disks, mdstat=mdstat), rule=rule, wipe="K4GH2BBB")
    assert "a member of array without a name (UUID unknown, raid1, 2 devices; members " in text
    assert "assembled as /dev/md0, active raid1 [UU])" in text
    assert "`wipe` must also list SMALL (the array's other members)" in text
    assert run(probe(*disks, mdstat=mdstat), rule=rule, wipe="K4GH2BBB SMALL").wiped


def test_inactive_array_wholly_on_wiped_disks_is_stopped_first() -> None:
    disks = hdd("sda", "K4GH2BBB", raid_part("sda", md("md127", 10))), hdd("sdb", "K4GH1AAA")
    mdstat = RESCUE_MDSTAT.replace("md127", "md100") + (
        "md127 : inactive sda1[1](S)\n      3906886144 blocks super 1.2\n"
    )
    examine = {"/dev/sda1": Superblock("7d:45", "raid1", 2, "rescue:0")}
    text = refusal(probe(*disks, mdstat=mdstat, examine=examine))
    assert "assembled as /dev/md127, inactive (assembled, not running)" in text
    sel = run(probe(*disks, mdstat=mdstat, examine=examine), wipe="K4GH2BBB")
    assert sel.wipe_disks == ("/dev/sda",)  # the wipe stage stops the arrays on it first


def ours(level: str = "raid1", devices: int = 2, name: str = "md4") -> dict[str, Superblock]:
    sb = Superblock(OURS, level, devices, name)
    return {"/dev/sda1": sb, "/dev/sdb1": sb}


def our_disks(fstype: str = "ext4", label: str = "data") -> tuple[dict[str, Any], ...]:
    array = md("md127", HDD_BYTES, fstype=fstype, label=label)
    return (
        hdd("sda", "K4GH2BBB", raid_part("sda", array)),
        hdd("sdb", "K4GH1AAA", raid_part("sdb", array)),
    )


def test_our_own_array_from_an_earlier_run_is_the_converged_case() -> None:
    mdstat = RESCUE_MDSTAT.replace("md127", "md100") + (
        "md127 : active raid1 sda1[0] sdb1[1]\n      3906885440 blocks super 1.2 [2/2] [UU]\n"
    )
    sel = run(probe(*our_disks(), mdstat=mdstat, examine=ours()))
    assert sel.existing_uuid == OURS and not sel.wiped and not sel.wipe_disks
    assert "member of fleet's own array UUID" in sel.taken[0]["why"]


def test_fleet_marker_identifies_its_array_when_the_store_lost_it() -> None:
    marked = ours(name=f"{OWNED.marker}:md4")
    lost = Ownership(frozenset(), OWNED.marker)
    assert run(probe(*our_disks(), mdstat="", examine=marked), owner=lost).existing_uuid == OURS
    other_host = Ownership(frozenset(), owner_marker("ns2.ip-203-0-113.eu", "md4", 1))
    text = refusal(probe(*our_disks(), mdstat="", examine=marked), owner=other_host)
    assert f"array '{OWNED.marker}:md4'" in text and "not created by fleet for this host" in text


def test_same_name_and_level_is_not_identity() -> None:
    # the seed's array, or another host's, named like ours: foreign without a record or marker
    for name in ("md4", "otherhost:md4", "ns1234:md4"):
        text = refusal(probe(*our_disks(), mdstat="", examine=ours(name=name)), owner=Ownership())
        assert f"array {name!r} (UUID {OURS}, raid1, 2 devices" in text
        assert "not created by fleet for this host" in text


def test_our_array_mounted_at_the_mount_point_in_live_mode() -> None:
    array = md("md4", HDD_BYTES, fstype="ext4", label="data", mountpoint="/opt")
    disks = hdd("sda", "A", raid_part("sda", array)), hdd("sdb", "B", raid_part("sdb", array))
    assert run(probe(*disks, mdstat="", examine=ours(), rescue=False)).existing_uuid == OURS
    elsewhere = md("md4", HDD_BYTES, fstype="ext4", label="data", mountpoint="/srv")
    moved = (
        hdd("sda", "A", raid_part("sda", elsewhere)),
        hdd("sdb", "B", raid_part("sdb", elsewhere)),
    )
    assert "mounted at /srv" in refusal(probe(*moved, mdstat="", examine=ours(), rescue=False))


@pytest.mark.parametrize(
    ("examine", "why"),
    [(ours(level="raid0"), "but it is raid0, the plan wants raid1"),
     (ours(devices=3), "its members are not exactly the first partitions of the 2 chosen")],
)  # fmt: skip
def test_an_array_that_is_not_exactly_ours_is_refused(
    examine: dict[str, Superblock], why: str
) -> None:
    assert why in refusal(probe(*our_disks(), mdstat="", examine=examine))


def test_our_array_with_another_filesystem_needs_wipe_to_reformat() -> None:
    disks = our_disks(fstype="xfs")
    text = refusal(probe(*disks, mdstat="", examine=ours()))
    assert "already carries xfs 'data', the plan wants ext4 'data'" in text
    assert run(probe(*disks, mdstat="", examine=ours()), wipe="K4GH2BBB K4GH1AAA").existing_uuid


def test_empty_raid_partition_left_by_an_interrupted_run_is_not_data() -> None:
    disks = hdd("sda", "K4GH2BBB", raid_part("sda")), hdd("sdb", "K4GH1AAA", raid_part("sdb"))
    sel = run(probe(*disks))
    assert not sel.existing_uuid and sel.members == ("/dev/sdb1", "/dev/sda1")


def test_one_hdd_missing_fails_clearly() -> None:
    text = refusal(probe(hdd("sda", "K4GH2BBB")))
    assert text.startswith("RAID1 needs at least 2 disks and the rule matches 1: /dev/sda (")
    assert "RAID6 needs at least 4 disks" in refusal(probe(*blank()), target=Target(6, "md4"))


def test_rule_filters_count_and_size() -> None:
    small = hdd("sdc", "SMALL1", size=1_000_000_000_000, model="ST1000NM0033")
    p = probe(*blank(), small)
    assert len(run(p).disks) == 3
    sel = run(p, rule=DiskRule(model="hgst*"))
    assert [d.serial for d in sel.disks] == ["K4GH1AAA", "K4GH2BBB"]
    assert any("model does not match 'hgst*'" in s for s in sel.skipped)
    assert len(run(p, rule=DiskRule(min_size=2_000_000_000_000)).disks) == 2
    text = refusal(p, rule=DiskRule(count=2))
    assert "the disk rule wants 2 disks and matches 3" in text


def test_mixed_sizes_say_how_much_stays_unused() -> None:
    small = hdd("sdc", "SMALL1", size=8 * 1024**3)
    big = hdd("sdd", "BIG1", size=12 * 1024**3)
    sel = run(probe(small, big))
    assert sel.notes == (
        "/dev/sdd (serial BIG1) is 12.9 GB: 4.3 GB of it stays unused (members use the smallest "
        "disk's size, 8.6 GB)",
    )


def test_max_size_leaving_too_few_disks() -> None:
    small = hdd("sdc", "SMALL1", size=1_000_000_000_000)
    text = refusal(probe(*blank(), small), rule=DiskRule(max_size=2_000_000_000_000))
    assert "RAID1 needs at least 2 disks and the rule matches 1" in text
    assert "larger than max_size 2.0 TB" in text


def test_disks_without_distinct_serials_are_refused() -> None:
    twins = hdd("sda", "SAME"), hdd("sdb", "SAME")
    assert "distinct serials" in refusal(probe(*twins))


def test_usable_bytes_per_level() -> None:
    sizes = [4_000, 4_000, 5_000, 4_000]
    assert [usable_bytes(lv, sizes) for lv in (0, 1, 5, 6, 10)] == [
        16_000,
        4_000,
        12_000,
        8_000,
        8_000,
    ]
