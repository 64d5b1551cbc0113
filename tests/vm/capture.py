"""Capture real command outputs from VM hosts into text files, for unit tests of the parsers
(hybrid-raid's facts stage). Run as root once the images are built::

    python -m tests.vm.capture tests/data/vm

Boots two VMs (blank HDDs, and HDDs with OVH's leftover 511 MiB partition), records the outputs
on the installed system, then reboots both into rescue and records them again.
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleet.sandbox.vm import VmFleet, VmSpec, free_port
from fleet.sandbox.vm_images import ensure_images
from tests.vm.conftest import KeyPair, Ssh, make_key

LSBLK = (
    "lsblk -J -b -o NAME,PATH,SIZE,TYPE,ROTA,TRAN,MODEL,SERIAL,FSTYPE,LABEL,UUID,PARTTYPE,"
    "MOUNTPOINT,PKNAME"
)
COMMANDS = {
    "lsblk.json": LSBLK,
    "mdstat.txt": "cat /proc/mdstat",
    "mdadm-detail-scan.txt": "mdadm --detail --scan",
    "mdadm-examine-sda.txt": "mdadm --examine /dev/sda 2>&1; echo exit=$?",
    "mdadm-examine-sda1.txt": "test -b /dev/sda1 && mdadm --examine /dev/sda1 2>&1; echo exit=$?",
    "mdadm-examine-nvme0n1p3.txt": "mdadm --examine /dev/nvme0n1p3",
    "mdadm-detail-md3.txt": "mdadm --detail $(readlink -f /dev/md/md3* /dev/md3 | head -1)",
    "blkid.txt": "blkid -o export",
    "hostname.txt": "hostname",
    "findmnt.json": "findmnt -J",
}


def capture(ssh: Ssh, key: KeyPair, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, command in COMMANDS.items():
        done = ssh.run(key, command, pin=False, check=False)
        (out / name).write_text(done.stdout)


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "tests/data/vm").absolute()
    images = ensure_images()
    with tempfile.TemporaryDirectory(prefix="fleet-vm-capture-") as tmp:
        state = Path(tmp)
        key = make_key(state, "operator")
        specs = [
            VmSpec("blank", "127.0.0.1", free_port(), hostname="ns3900001.ip-127-0-0-1.eu"),
            VmSpec("stub", "127.0.0.1", free_port(), hostname="ns3900002.ip-127-0-0-2.eu",
                   hdd_stub=True),
        ]  # fmt: skip
        vms = VmFleet(
            specs, state_dir=state, images=images, operator_public_key=key.public, sandbox_id="cap"
        )
        try:
            vms.start()
            for mode in ("installed", "rescue"):
                if mode == "rescue":
                    for spec in specs:
                        vms.power_on(spec.name, "rescue", rescue_ssh_key=key.public)
                    vms.wait_ssh_all()
                with ThreadPoolExecutor(2) as pool:
                    jobs = []
                    for spec in specs:
                        ssh = Ssh(spec.address, spec.port, state / f"known_hosts-{spec.name}")
                        ssh.forget()
                        out = target / f"{mode}-{spec.name}-hdds"
                        jobs.append(pool.submit(capture, ssh, key, out))
                    for job in jobs:
                        job.result()
        finally:
            vms.stop()
    print(f"captured into {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
