"""Capture real outputs from VM hosts into tests/data/vm/, for the unit tests of hybrid-raid's
guard. Run as root once the images are built::

    python -m tests.vm.capture tests/data/vm [usb] [allhdd] [foreign]

Each case directory holds what the plan's own facts stage reads (the same commands, through
:func:`fleet.plans.hybrid_raid.facts.read_probe`), one file per source, plus ``meta.json``
(the VM's serials). The cases, on three VMs (two at a time):

* ``usb-installed``, ``usb-rescue``: a hybrid server whose two blank HDDs sit on swapped SATA
  ports, with a removable USB stick and a BMC virtual-media disk; in rescue also an iSCSI LUN
  (a kernel target on the VM's loopback, logged in with open-iscsi);
* ``wholedisk-rescue``: the same VM after an array was made on its two whole HDDs (no
  partitions) and stopped again;
* ``allhdd-rescue``: an all-HDD server (its system RAID1 arrays on two SATA HDDs) in rescue;
* ``foreign-installed``, ``foreign-rescue``: six HDDs, two carrying an array made by hand as in
  the seed (``mdadm --create /dev/md4``, RAID1, ext4 with a file), four a failed RAID5 named
  ``mediaserver:0`` (two members failed, then stopped).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fleet.inventory import Host
from fleet.plans.hybrid_raid.facts import read_probe
from fleet.sandbox.vm import VmFleet, VmSpec, free_port
from fleet.sandbox.vm_images import ensure_images
from fleet.stages.call import StageContext
from fleet.transport.base import CommandResult
from tests.vm.conftest import KeyPair, Ssh, make_key

FILES = {
    "lsblk": "lsblk.json", "mdstat": "mdstat.txt", "scan": "scan.txt", "devices": "devices.txt",
    "blkid": "blkid.txt", "swaps": "swaps.txt", "findmnt": "findmnt.json", "pvs": "pvs.json",
    "installed": "installed.txt",
}  # fmt: skip

#: The device path of the disk with serial $1.
BY_SERIAL = "by_serial() { lsblk -dnpo NAME,SERIAL | awk -v s=\"$1\" '$2==s {print $1}'; }\n"

SEED_MD4 = """set -e
a=$(by_serial {0}); b=$(by_serial {1})
for d in $b $a; do parted -s -a optimal "$d" mklabel gpt mkpart primary ext4 0% 100% set 1 raid on; done
udevadm settle
mdadm --create --verbose /dev/md4 --run --level=1 --assume-clean --raid-devices=2 "${{b}}1" "${{a}}1"
mkfs.ext4 -q -F /dev/md4
mount /dev/md4 /mnt && echo keep-me > /mnt/precious.txt && sync && umount /mnt
"""
FAILED_RAID5 = """set -e
p=
for s in {0} {1} {2} {3}; do d=$(by_serial $s)
  parted -s -a optimal "$d" mklabel gpt mkpart primary 0% 100% set 1 raid on; p="$p ${{d}}1"; done
udevadm settle
mdadm --create /dev/md0 --run --level=5 --raid-devices=4 --assume-clean --homehost=mediaserver \\
  --name=0 $p
mkfs.ext4 -q -F /dev/md0
set -- $p
mdadm /dev/md0 --fail "$3"; sync; mdadm /dev/md0 --fail "$4" || true; sync
mdadm --stop /dev/md0; udevadm settle
"""
WHOLE_DISKS = """set -e
mdadm --create /dev/md9 --run --level=1 --raid-devices=2 --metadata=1.2 --assume-clean \\
  --homehost=otherhost --name=9 "$(by_serial {0})" "$(by_serial {1})"
udevadm settle; mdadm --stop /dev/md9; udevadm settle; sleep 2; udevadm settle
"""
ISCSI_LUN = """set -e
modprobe target_core_mod; modprobe target_core_file; modprobe iscsi_target_mod
C=/sys/kernel/config/target; IQN=iqn.2003-01.org.linux-iscsi.rescue:lun0
truncate -s 128M /run/lun0.img
mkdir -p $C/core/fileio_0/lun0
echo fd_dev_name=/run/lun0.img,fd_dev_size=134217728 > $C/core/fileio_0/lun0/control
echo fleetlun0 > $C/core/fileio_0/lun0/wwn/vpd_unit_serial
echo 1 > $C/core/fileio_0/lun0/enable
mkdir -p $C/iscsi/$IQN/tpgt_1/lun/lun_0 $C/iscsi/$IQN/tpgt_1/np/127.0.0.1:3260
ln -s $C/core/fileio_0/lun0 $C/iscsi/$IQN/tpgt_1/lun/lun_0/lio
for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
  echo ${a#*=} > $C/iscsi/$IQN/tpgt_1/attrib/${a%=*}; done
echo 1 > $C/iscsi/$IQN/tpgt_1/enable
grep -q '^InitiatorName=iqn' /etc/iscsi/initiatorname.iscsi 2>/dev/null \\
  || echo "InitiatorName=$(iscsi-iname)" > /etc/iscsi/initiatorname.iscsi
iscsiadm -m discovery -t sendtargets -p 127.0.0.1 >/dev/null
iscsiadm -m node -T $IQN -p 127.0.0.1 --login >/dev/null
udevadm settle; sleep 2; udevadm settle
"""


def runner(ssh: Ssh, key: KeyPair) -> Callable[[str, float], CommandResult]:
    def run(command: str, timeout: float) -> CommandResult:
        done = ssh.run(key, command, pin=False, check=False)
        return CommandResult(command, done.returncode, done.stdout, done.stderr, 0.0)

    return run


def capture(ssh: Ssh, key: KeyPair, spec: VmSpec, out: Path, live: bool) -> None:
    host = Host(name=spec.name, address=spec.address, port=spec.port)
    ctx = StageContext(host, {}, {}, {}, "disk" if live else "rescue", runner(ssh, key))
    raw = read_probe(ctx, live)
    out.mkdir(parents=True, exist_ok=True)
    for name, file in FILES.items():
        (out / file).write_text(str(raw[name]))
    meta: dict[str, Any] = {
        "live": live, "hostname": ssh.run(key, "hostname", pin=False).stdout.strip(),
        "hdd_serials": list(spec.hdd_serials), "hdd_ports": list(spec.ports),
        "system_serials": list(spec.nvme_serials), "system_bus": spec.system_bus,
    }  # fmt: skip
    if spec.usb_stick_mib:
        meta["usb_serial"] = spec.usb_serial
    if spec.virtual_media_mib:
        meta["virtual_media_serial"] = spec.virtual_media_serial
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"captured {out.name}", flush=True)


def session(vms: VmFleet, spec: VmSpec, state: Path, key: KeyPair) -> Ssh:
    ssh = Ssh(spec.address, spec.port, state / f"known_hosts-{spec.name}")
    ssh.forget()
    return ssh


def to_rescue(vms: VmFleet, spec: VmSpec, key: KeyPair) -> None:
    """Power-cycle into rescue with ``key`` as the rescue key."""
    vms.power_on(spec.name, "rescue", rescue_ssh_key=key.public)
    vms.wait_ssh(spec.name, 900)


def usb_case(vms: VmFleet, spec: VmSpec, state: Path, key: KeyPair, target: Path) -> None:
    capture(session(vms, spec, state, key), key, spec, target / "usb-installed", live=True)
    to_rescue(vms, spec, key)
    ssh = session(vms, spec, state, key)
    ssh.run(key, ISCSI_LUN, pin=False)
    capture(ssh, key, spec, target / "usb-rescue", live=False)
    ssh.run(key, "iscsiadm -m node --logoutall=all >/dev/null", pin=False)
    ssh.run(key, BY_SERIAL + WHOLE_DISKS.format(*spec.hdd_serials), pin=False)
    capture(ssh, key, spec, target / "wholedisk-rescue", live=False)


def allhdd_case(vms: VmFleet, spec: VmSpec, state: Path, key: KeyPair, target: Path) -> None:
    to_rescue(vms, spec, key)  # its installed system boots from SATA: MODULES=dep lacks ahci
    capture(session(vms, spec, state, key), key, spec, target / "allhdd-rescue", live=False)


def foreign_case(vms: VmFleet, spec: VmSpec, state: Path, key: KeyPair, target: Path) -> None:
    ssh = session(vms, spec, state, key)
    serials = spec.hdd_serials
    ssh.run(key, BY_SERIAL + SEED_MD4.format(*serials[:2]), pin=False)
    ssh.run(key, BY_SERIAL + FAILED_RAID5.format(*serials[2:6]), pin=False)
    capture(ssh, key, spec, target / "foreign-installed", live=True)
    ssh.run(key, "sync", pin=False)
    to_rescue(vms, spec, key)
    capture(session(vms, spec, state, key), key, spec, target / "foreign-rescue", live=False)


def run_pair(target: Path, cases: list[tuple[VmSpec, Callable[..., None]]], boot: str) -> None:
    images = ensure_images()
    with tempfile.TemporaryDirectory(prefix="fleet-vm-capture-") as tmp:
        state = Path(tmp)
        key = make_key(state, "operator")
        specs = [spec for spec, _ in cases]
        vms = VmFleet(specs, state_dir=state, images=images, operator_public_key=key.public,
                      sandbox_id="cap")  # fmt: skip
        try:
            vms.start("disk" if boot == "disk" else "rescue", wait=boot == "disk")
            with ThreadPoolExecutor(len(cases)) as pool:
                jobs = [pool.submit(case, vms, spec, state, key, target) for spec, case in cases]
                for job in jobs:
                    job.result()
        finally:
            vms.stop()


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "tests/data/vm").absolute()
    addr = "127.0.0.1"
    usb = VmSpec("usb", addr, free_port(), hostname="ns3900001.ip-127-0-0-1.eu",
                 hdd_ports=(1, 0), usb_stick_mib=256, virtual_media_mib=64)  # fmt: skip
    allhdd = VmSpec("allhdd", addr, free_port(), hostname="ns3900002.ip-127-0-0-2.eu",
                    system_bus="sata", hdd_count=2)  # fmt: skip
    foreign = VmSpec("foreign", addr, free_port(), hostname="ns3900003.ip-127-0-0-3.eu",
                     hdd_count=6, hdd_size_mib=1024)  # fmt: skip
    only = set(argv[1:])  # case names: usb, allhdd, foreign (default: all)
    runs = [(usb, usb_case, "disk"), (allhdd, allhdd_case, "rescue"),
            (foreign, foreign_case, "disk")]  # fmt: skip
    runs = [r for r in runs if not only or r[0].name in only]
    with ThreadPoolExecutor(2) as pool:  # two VMs at a time at most
        for job in [
            pool.submit(run_pair, target, [(spec, case)], boot) for spec, case, boot in runs
        ]:
            job.result()
    print(f"captured into {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
