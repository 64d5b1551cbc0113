"""Pure logic of the VM hosts: the QEMU command line, and reading GPT, md superblocks and /boot
listings from raw bytes (no QEMU, no disk)."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from fleet.errors import UsageError
from fleet.sandbox.vm_images import MD_MAGIC, SECTOR, parse_gpt, parse_md_superblock, pick_kernel
from fleet.sandbox.vm_spec import BootSpec, VmSpec, qemu_command
from fleet.sandbox.vm_spec import validate as _validate

ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
RAID = "a19d880f-05fc-4d3b-a006-743f0f84911e"


def _command(spec: VmSpec) -> list[str]:
    boot = BootSpec("disk", Path("/k"), Path("/i"), "root=UUID=x ro", {"host_key": Path("/s/key")})
    return qemu_command(
        spec,
        boot,
        accel="tcg",
        marker="fleet-vm:t:vm-01",
        nvmes=[Path("/s/n0.qcow2"), Path("/s/n1.qcow2")],
        hdds=[Path(f"/s/h{i}.qcow2") for i in range(spec.hdd_count)],
        qmp=[Path("/r/q"), Path("/r/e")],
        console=Path("/s/console.log"),
    )


def test_qemu_forwards_ssh_on_loopback_only_and_isolates_the_guest() -> None:
    command = _command(VmSpec("vm-01", "127.100.0.3", 2222))
    netdev = command[command.index("-netdev") + 1]
    assert netdev == "user,id=net0,restrict=on,hostfwd=tcp:127.100.0.3:2222-:22"
    assert "-no-reboot" in command and command[command.index("-name") + 1] == "fleet-vm:t:vm-01"
    assert command[command.index("-append") + 1] == "root=UUID=x ro"
    assert "name=opt/fleet/host_key,file=/s/key" in command


def test_hdds_are_rotational_sata_disks_with_model_and_serial() -> None:
    spec = VmSpec("vm-01", "127.0.0.1", 2222, hdd_count=2)
    devices = [arg for arg in _command(spec) if arg.startswith("ide-hd,")]
    assert len(devices) == 2
    for i, (device, serial) in enumerate(zip(devices, spec.hdd_serials, strict=True)):
        assert f"bus=ide.{i}" in device and f"serial={serial}" in device
        assert "model=HGST HUS726040AL" in device and device.endswith(",rotation_rate=7200")
    nvmes = [arg for arg in _command(spec) if arg.startswith("nvme,")]
    assert [n.split("serial=")[1] for n in nvmes] == list(spec.nvme_serials)


def test_serials_are_stable_per_vm_and_differ_between_vms() -> None:
    one, again, other = (VmSpec(n, "127.0.0.1", 1) for n in ("vm-01", "vm-01", "vm-02"))
    assert one.hdd_serials == again.hdd_serials
    assert set(one.hdd_serials).isdisjoint(other.hdd_serials)
    assert len(set(one.hdd_serials)) == 2


def test_a_vm_without_hdds_has_no_sata_disk() -> None:
    assert not [a for a in _command(VmSpec("v", "127.0.0.1", 1, hdd_count=0)) if "ide-hd" in a]


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        (VmSpec("bad name", "127.0.0.1", 1), "not a usable VM name"),
        (VmSpec("v", "10.0.0.1", 22), "not a loopback endpoint"),
        (VmSpec("v", "127.0.0.1", 22, hdd_count=9), "hdd_count"),
    ],
)
def test_bad_specs_are_refused(spec: VmSpec, what: str) -> None:
    with pytest.raises(UsageError, match=what):
        _validate([spec])


def test_two_vms_cannot_share_an_endpoint() -> None:
    with pytest.raises(UsageError, match="duplicate"):
        _validate([VmSpec("a", "127.0.0.1", 5), VmSpec("b", "127.0.0.1", 5)])


def _gpt(parts: list[tuple[str, int, int, str]]) -> bytes:
    """The first 34 sectors of a GPT disk holding ``parts`` (type, first LBA, last LBA, name)."""
    head = bytearray(34 * SECTOR)
    head[SECTOR : SECTOR + 8] = b"EFI PART"
    struct.pack_into("<QII", head, SECTOR + 72, 2, 128, 128)
    for i, (type_guid, first, last, name) in enumerate(parts):
        entry = 2 * SECTOR + i * 128
        head[entry : entry + 16] = uuid.UUID(type_guid).bytes_le
        head[entry + 16 : entry + 32] = uuid.uuid4().bytes_le
        struct.pack_into("<QQ", head, entry + 32, first, last)
        encoded = name.encode("utf-16-le")
        head[entry + 56 : entry + 56 + len(encoded)] = encoded
    return bytes(head)


def test_gpt_entries_are_read_in_bytes_with_types_and_names() -> None:
    head = _gpt([(ESP, 2048, 1048575, "primary"), (RAID, 1048576, 3145727, "primary")])
    parts = parse_gpt(head)
    assert [(p.number, p.start, p.size, p.type_guid) for p in parts] == [
        (1, 1 << 20, 535822336, ESP),
        (2, 512 << 20, 1 << 30, RAID),
    ]
    assert parts[0].name == "primary"


def test_no_gpt_signature_means_no_partitions() -> None:
    assert parse_gpt(bytes(34 * SECTOR)) == []


def test_md_superblock_identity_fields() -> None:
    block = bytearray(4096)
    struct.pack_into("<I", block, 0, MD_MAGIC)
    block[16:32] = bytes(range(16))
    block[32:35] = b"md3"
    struct.pack_into("<i", block, 72, 1)
    struct.pack_into("<I", block, 92, 2)
    struct.pack_into("<Q", block, 128, 10240)
    struct.pack_into("<I", block, 160, 1)
    member = parse_md_superblock(bytes(block))
    assert member is not None
    assert (member.name, member.level, member.raid_disks) == ("md3", 1, 2)
    assert (member.data_offset, member.dev_number) == (10240 * SECTOR, 1)
    assert member.set_uuid == bytes(range(16)).hex()
    assert parse_md_superblock(bytes(4096)) is None


def test_the_newest_kernel_with_an_initramfs_is_booted() -> None:
    names = [
        "vmlinuz-6.1.0-9-amd64",
        "initrd.img-6.1.0-9-amd64",
        "vmlinuz-6.1.0-10-amd64",
        "initrd.img-6.1.0-10-amd64",
        "vmlinuz-6.1.0-11-amd64",  # no initramfs: not bootable
        "config-6.1.0-11-amd64",
    ]
    assert pick_kernel(names) == ("vmlinuz-6.1.0-10-amd64", "initrd.img-6.1.0-10-amd64")
    assert pick_kernel(["vmlinuz-6.1.0-11-amd64"]) is None


def _devices(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-device"]


def test_hdds_on_swapped_ports_keep_their_serials() -> None:
    spec = VmSpec("vm-01", "127.0.0.1", 2222, hdd_ports=(1, 0), hdd_sizes_mib=(12288, 8192))
    command = _command(spec)
    sata = [d for d in _devices(command) if d.startswith("ide-hd,")]
    assert [d.split(",")[1] for d in sata] == ["bus=ide.1", "bus=ide.0"]
    assert [d.split("serial=")[1].split(",")[0] for d in sata] == list(spec.hdd_serials)
    assert spec.sizes_mib == (12288, 8192)


def test_usb_stick_is_removable_and_virtual_media_is_an_ami_disk_on_usb() -> None:
    spec = VmSpec("vm-01", "127.0.0.1", 2222, usb_stick_mib=256, virtual_media_mib=64)
    boot = BootSpec("disk", Path("/k"), Path("/i"), "ro", {})
    command = qemu_command(
        spec, boot, accel="tcg", marker="m", nvmes=[Path("/n0"), Path("/n1")],
        hdds=[Path("/h0"), Path("/h1")], qmp=[], console=Path("/c"),
        stick=Path("/s/stick.qcow2"), vmedia=Path("/s/vm.qcow2"),
    )  # fmt: skip
    devices = _devices(command)
    assert "qemu-xhci,id=xhci" in devices
    assert f"usb-storage,bus=xhci.0,drive=stick,removable=on,serial={spec.usb_serial}" in devices
    assert "usb-bot,bus=xhci.0,id=vmbot" in devices
    scsi = next(d for d in devices if d.startswith("scsi-hd,"))
    assert "vendor=AMI,product=Virtual HDisk0" in scsi and "bus=vmbot.0" in scsi
    assert not [d for d in _devices(_command(VmSpec("v", "127.0.0.1", 1))) if "usb" in d]


def test_all_hdd_server_puts_its_system_disks_on_the_first_sata_ports() -> None:
    spec = VmSpec("vm-01", "127.0.0.1", 2222, system_bus="sata")
    sata = [d for d in _devices(_command(spec)) if d.startswith("ide-hd,")]
    assert [d.split(",")[1] for d in sata] == ["bus=ide.0", "bus=ide.1", "bus=ide.2", "bus=ide.3"]
    assert "drive=nvme0" in sata[0] and "rotation_rate=7200" in sata[0]
    assert not [d for d in _devices(_command(spec)) if d.startswith("nvme,")]


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        (VmSpec("v", "127.0.0.1", 1, hdd_ports=(0, 0)), "must be distinct"),
        (VmSpec("v", "127.0.0.1", 1, hdd_ports=(0, 6)), "0..5"),
        (VmSpec("v", "127.0.0.1", 1, system_bus="sata", hdd_ports=(0, 2)), "free"),
        (VmSpec("v", "127.0.0.1", 1, hdd_sizes_mib=(100,)), "one size"),
    ],
)
def test_bad_disk_shapes_are_refused(spec: VmSpec, what: str) -> None:
    with pytest.raises(UsageError, match=what):
        _validate([spec])
