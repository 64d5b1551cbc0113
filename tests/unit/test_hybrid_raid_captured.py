"""The guard on real outputs captured from VM hosts (tests/data/vm/, made by tests/vm/capture.py):
every case the hybrid-raid plan got wrong when it trusted names and shapes.

Each case directory holds what the facts stage read on one VM, source by source; ``meta.json``
gives the VM's serials. A test may remove one source's answer (as a tool that failed or
printed nothing would), never invent one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fleet.plans.disks import (
    DiskRule,
    Ownership,
    Refused,
    Selection,
    SystemSpec,
    Target,
    guard,
    probe_from,
)
from tests.vm.capture import FILES

DATA = Path(__file__).resolve().parent.parent / "data" / "vm"
RAID1 = Target(1, "md4")


def raw(case: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: (DATA / case / f).read_text() for k, f in FILES.items()}
    out["live"] = meta(case)["live"]
    return out


def meta(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / case / "meta.json").read_text())
    return data


def without(text: str, device: str, section: str) -> str:
    """The device probe output with one section of one device emptied (a tool that said
    nothing), everything else as captured."""
    pattern = rf"(@@dev {re.escape(device)}\n(?:(?!@@dev ).*\n)*?@@{section}\n)((?:(?!@@).*\n)*)"
    changed, count = re.subn(pattern, r"\1", text)
    assert count == 1, (device, section)
    return changed


def run(
    case_raw: dict[str, Any],
    target: Target = RAID1,
    wipe: tuple[str, ...] = (),
    rule: DiskRule | None = None,
    owner: Ownership | None = None,
) -> Selection:
    return guard(probe_from(case_raw), rule or DiskRule(), target, frozenset(wipe), owner)


def refusal(case_raw: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(Refused) as info:
        run(case_raw, **kw)
    return info.value.message


def refused_why(sel: Selection, serial: str) -> str:
    return next(str(d["why"]) for d in sel.refused if d["serial"] == serial)


# -- USB, iSCSI, BMC virtual media, swapped ports ----------------------------------------------


@pytest.mark.parametrize("case", ["usb-installed", "usb-rescue"])
def test_usb_stick_and_virtual_media_are_never_taken(case: str) -> None:
    m = meta(case)
    sel = run(raw(case))
    assert sorted(d.serial for d in sel.disks) == sorted(m["hdd_serials"])
    assert refused_why(sel, m["usb_serial"]) == "removable USB medium (lsblk RM=1): never taken"
    vmedia = next(d for d in sel.refused if d["model"] == "Virtual HDisk0")
    assert vmedia["why"] == "BMC virtual media (AMI Virtual HDisk0)"
    for serial in m["system_serials"]:
        assert refused_why(sel, serial).startswith("system disk: holds ")
    # not even when the transport is widened and wipe names them
    wider = DiskRule(transports=("sata", "usb"))
    again = run(raw(case), rule=wider, wipe=(m["usb_serial"], vmedia["serial"]))
    assert sorted(d.serial for d in again.disks) == sorted(m["hdd_serials"])


def test_iscsi_lun_is_taken_only_when_transport_names_it() -> None:
    sel = run(raw("usb-rescue"))
    assert refused_why(sel, "fleetlun0") == (
        "on transport iscsi: the rule takes sata, sas, nvme disks only (`transport=` widens it)"
    )
    wider = run(
        raw("usb-rescue"), target=Target(5, "md4"), rule=DiskRule(transports=("sata", "iscsi"))
    )
    assert "fleetlun0" in [d.serial for d in wider.disks] and len(wider.disks) == 3


def test_only_usb_iscsi_and_virtual_media_left_means_nothing_is_taken() -> None:
    # RAID5 wants a third disk: the stick, the LUN and the virtual media are named, not taken
    text = refusal(raw("usb-rescue"), target=Target(5, "md4"))
    assert text.startswith("RAID5 needs at least 3 disks and the rule matches 2: ")
    assert "(QEMU HARDDISK, serial USB02DE0E, 268.4 MB): removable USB medium" in text
    assert "(FILEIO, serial fleetlun0, 134.2 MB): on transport iscsi" in text
    assert "(Virtual HDisk0, serial 1-0000:00:03.0-2, 67.1 MB): BMC virtual media" in text


def test_swapped_ports_rename_the_disks_but_the_serials_decide() -> None:
    installed, rescue = run(raw("usb-installed")), run(raw("usb-rescue"))
    paths = {c: {d.serial: d.path for d in s.disks} for c, s in (("i", installed), ("r", rescue))}
    assert paths["i"] != paths["r"]  # sda is another disk in rescue than on the installed system
    assert [d.serial for d in installed.disks] == [d.serial for d in rescue.disks]  # by serial
    assert installed.members != rescue.members


# -- foreign arrays: the seed's md4, a failed RAID5, whole-disk members -------------------------


@pytest.mark.parametrize("case", ["foreign-installed", "foreign-rescue"])
def test_the_seeds_hand_made_md4_is_foreign_with_the_same_name_and_level(case: str) -> None:
    m = meta(case)
    seed = m["hdd_serials"][:2]
    text = refusal(raw(case), target=Target(1, "4"))  # the seed's name and level
    assert re.search(
        r"a member of array 'ns3900003\.ip-127-0-0-3\.eu:4' \(UUID 132ae610:537325c5:2d5efa6a:"
        r"73f4f5dd, raid1, 2 devices; members /dev/sd.1 \[serial K7H\w+\], /dev/sd.1 \[serial "
        r"K7H\w+\]; assembled as /dev/md\d+, active raid1 \[UU\]\), not created by fleet for "
        r"this host",
        text,
    ), text
    assert all(f"serial {s}" in text for s in seed)


def test_a_failed_foreign_raid5_named_like_the_plan_wants_is_refused() -> None:
    # the failure mode of the report: md_name=0 level=5 on "mediaserver:0"
    case = raw("foreign-installed")
    raid5 = meta("foreign-installed")["hdd_serials"][2:]
    text = refusal(case, target=Target(5, "0"))
    assert (
        "a member of array 'mediaserver:0' (UUID 08fcc01a:910f6fa6:7cccc2d6:a81f4999, raid5, "
        "4 devices; members "
    ) in text
    assert "not assembled; superblock state clean, array state AA.., 2 of 4 members missing" in text
    partial = refusal(
        case,
        target=Target(5, "0"),
        wipe=tuple(raid5[:2]) + tuple(meta("foreign-installed")["hdd_serials"][:2]),
    )
    assert "`wipe` must also list" in partial
    everything = run(
        case, target=Target(5, "0"), wipe=tuple(meta("foreign-installed")["hdd_serials"])
    )
    assert len(everything.wipe_disks) == 6 and not everything.existing_uuid


def test_the_failed_raid5_in_rescue_is_inactive_and_still_named() -> None:
    text = refusal(raw("foreign-rescue"), target=Target(5, "0"))
    assert "array 'mediaserver:0' (UUID 08fcc01a:910f6fa6:7cccc2d6:a81f4999, raid5" in text
    assert re.search(r"assembled as /dev/md\d+, inactive \(assembled, not running\)", text)


def test_whole_disk_members_are_refused_with_and_without_examine() -> None:
    case = raw("wholedisk-rescue")
    serials = meta("wholedisk-rescue")["hdd_serials"]
    text = refusal(case)
    assert "a member of array 'otherhost:9' (UUID 284f32fb:c8f584a0:99315ec0:affec32a" in text
    assert "members /dev/sd" in text and "not assembled" in text
    # mdadm --examine said nothing about the whole disks: lsblk, blkid and wipefs still do
    for disk in ("/dev/sda", "/dev/sdb"):
        case["devices"] = without(case["devices"], disk, "examine")
    text = refusal(case)
    assert (
        "sources disagree about /dev/sda (lsblk: linux_raid_member; mdadm --examine: nothing; "
        "blkid -p: linux_raid_member; wipefs -n: linux_raid_member)" in text
    )
    assert "carries linux_raid_member 'otherhost:9' on the whole disk" in text
    # and when blkid and wipefs said nothing either, lsblk alone still refuses
    for disk in ("/dev/sda", "/dev/sdb"):
        case["devices"] = without(case["devices"], disk, "wipefs")
    assert "lsblk: linux_raid_member; mdadm --examine: nothing" in refusal(case)
    assert run(case, wipe=tuple(serials)).wipe_disks == ("/dev/sda", "/dev/sdb")


# -- an all-HDD server in rescue ----------------------------------------------------------------


def test_all_hdd_system_disks_are_recognised_in_rescue_and_never_taken() -> None:
    m = meta("allhdd-rescue")
    everything = tuple(m["system_serials"] + m["hdd_serials"])
    sel = run(raw("allhdd-rescue"), wipe=everything)
    assert sorted(d.serial for d in sel.disks) == sorted(m["hdd_serials"])
    sda, sdb = (refused_why(sel, s) for s in m["system_serials"])
    assert sdb.startswith("system disk: ")
    assert sda.startswith("system disk: holds the EFI system partition /dev/sd")
    assert not sel.wipe_disks  # the data HDDs are blank
    text = refusal(raw("allhdd-rescue"), target=Target(10, "md4"), wipe=everything)
    assert text.startswith("RAID10 needs at least 4 disks and the rule matches 2")
    assert text.count("system disk:") == 2


def test_all_hdd_system_found_by_its_installed_fstab_when_no_esp_is_seen() -> None:
    case = raw("allhdd-rescue")
    case["lsblk"] = (
        case["lsblk"]
        .replace('"EFI_SYSPART"', '"OTHER"')
        .replace("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "0fc63daf-8483-4772-8e79-3d69d8477de4")
    )
    probe = probe_from(case)
    sel = guard(probe, DiskRule(), RAID1, frozenset(), None)
    whys = [refused_why(sel, s) for s in meta("allhdd-rescue")["system_serials"]]
    assert all(", / of the installed system on /dev/md" in w or "swap of the installed" in w
               or "/boot of the installed" in w for w in whys), whys  # fmt: skip


def test_ovh_specification_marks_the_system_group_and_refuses_when_it_cannot_tell() -> None:
    case = raw("allhdd-rescue")
    case["spec"] = SystemSpec(("HDD", 2, 9), (("HDD", 2, 4),)).to_json()
    assert len(run(case).disks) == 2
    # two groups of the same kind and size, and no evidence left on the disks: refuse
    case["lsblk"] = json.dumps({"blockdevices": [
        d for d in json.loads(case["lsblk"])["blockdevices"] if d["name"] in ("sdc", "sdd")
    ]})  # fmt: skip
    case["installed"] = case["mdstat"] = case["scan"] = ""
    case["spec"] = SystemSpec(("HDD", 2, 4), (("HDD", 2, 4),)).to_json()
    text = refusal(case)
    assert (
        "OVH's hardware specification gives a system group of 2x 4 GB HDD and another "
        "group of the same kind and size; fleet identified 0 system disk(s) here" in text
    )
