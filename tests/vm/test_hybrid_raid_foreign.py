"""An HDD pair carrying an array made by hand with the seed's procedure (tox env ``vm-all``).

On the installed system of a QEMU hybrid server, the test follows the seed: one RAID partition
per HDD, ``mdadm --create --verbose /dev/md4 ... --assume-clean``, the ARRAY line in
mdadm.conf, ``update-initramfs``, ext4 on /dev/md4 mounted at /opt from fstab, a file on it.
Then, through rescue (whose udev assembles that array again, as OVH's does):

* without ``wipe``, hybrid-raid refuses the host at its guard, naming the array (its name,
  UUID, level, members with serials, state), and the file is still there;
* with ``wipe`` listing both HDDs' serials (and the quarantine the refusal left cleared), the
  wipe stage stops the array, keeps udev from assembling it again, erases it, and the plan
  builds fleet's own array in its place; the old ARRAY line is gone from mdadm.conf, the /opt
  line now names fleet's filesystem by UUID, and the server boots twice with it. A second
  rollout changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet.sandbox.vm_images import VmImages
from tests.vm.rigs import (
    ROLLOUT_TIMEOUT,
    Rig,
    applied,
    check_array,
    disk_path,
    ends,
    installed,
    make_rig,
    rescue,
    vm_sandbox,
)

pytestmark = pytest.mark.vm

SHAPES = {"vm-01": {}}
#: The seed's procedure (000_*.txt in the shared seed), with RAID1 for the HDD pair.
SEED = """set -e
for d in {b} {a}; do parted -s -a optimal "$d" mklabel gpt mkpart primary ext4 0% 100% set 1 raid on; done
udevadm settle
mdadm --create --verbose /dev/md4 --run --level=1 --assume-clean --raid-devices=2 {b}1 {a}1
mdadm --detail --scan | grep md4 >> /etc/mdadm/mdadm.conf
update-initramfs -u
mkfs.ext4 -q -F /dev/md4
mkdir -p /opt && mount /dev/md4 /opt
printf '/dev/md4\\t/opt\\text4\\tdefaults\\t0\\t1\\n' >> /etc/fstab
echo keep-me > /opt/precious.txt && sync
"""


@pytest.fixture(scope="module")
def rig(
    vm_images: VmImages, ssh_client: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    with vm_sandbox(tmp_path_factory.mktemp("hybrid-foreign"), SHAPES) as box:
        rig = make_rig(box, tmp_path_factory.mktemp("state"), {})
        ssh, k = installed(box, "vm-01"), rig.key()
        a, b = (disk_path(ssh, k, s) for s in rig.spec("vm-01").hdd_serials)
        ssh.run(k, SEED.format(a=a, b=b))
        yield rig


@pytest.mark.timeout(ROLLOUT_TIMEOUT)
class TestForeign:
    uuid = ""

    def test_refused_without_wipe_and_the_file_stays(self, rig: Rig) -> None:
        vms = rig.box.vms
        assert vms is not None
        before = vms.nvme_checksums("vm-01")
        seed_uuid = (
            installed(rig.box, "vm-01")
            .run(rig.key(), "mdadm --detail --export /dev/md4 | sed -n 's/^MD_UUID=//p'")
            .stdout.strip()
        )
        code, events, _ = rig.rollout()
        assert code != 0
        end = ends(events)["vm-01"]
        assert (end["outcome"], end["stage"]) == ("failed", "guard")
        for serial in rig.spec("vm-01").hdd_serials:
            assert f"serial {serial}" in end["excerpt"]
        assert f"(UUID {seed_uuid}, raid1, 2 devices; members /dev/sd" in end["excerpt"]
        assert "not created by fleet for this host" in end["excerpt"]
        assert not [e for e in events if e.get("stage") in ("wipe", "partition", "array")]
        there = rescue(rig.box, "vm-01")  # the host stays in rescue, where the guard stopped
        md = there.run(rig.key(), "mdadm --detail --scan", pin=False).stdout
        assert seed_uuid in md  # the rescue's udev assembled the seed's array again
        read = there.run(rig.key(), f"mkdir -p /x && mount -o ro /dev/disk/by-id/md-uuid-{seed_uuid} "
                         "/x && cat /x/precious.txt; umount /x", pin=False)  # fmt: skip
        assert read.stdout.strip() == "keep-me"
        assert vms.nvme_checksums("vm-01") == before
        TestForeign.uuid = seed_uuid

    def test_wipe_listing_both_serials_replaces_it(self, rig: Rig) -> None:
        vms = rig.box.vms
        assert vms is not None
        before = vms.nvme_checksums("vm-01")
        wipe = ",".join(rig.spec("vm-01").hdd_serials)
        cleared = rig.cli("quarantine", "clear", "vm-01")  # the refusal quarantined it
        assert cleared.returncode == 0, cleared.stderr
        code, events, stderr = rig.rollout("--var", f"wipe={wipe}")
        assert code == 0, stderr[-3000:]
        assert ("vm-01", "wipe") in applied(events)
        uuid = check_array(rig.box, "vm-01", 1, rig.spec("vm-01").hdd_serials)
        assert uuid != self.uuid
        ssh = installed(rig.box, "vm-01")
        conf = ssh.run(rig.key(), "cat /etc/mdadm/mdadm.conf").stdout
        assert self.uuid and self.uuid not in conf
        assert "/dev/md4" not in ssh.run(rig.key(), "cat /etc/fstab").stdout
        assert vms.nvme_checksums("vm-01") == before

    def test_a_second_rollout_changes_nothing(self, rig: Rig) -> None:
        vms = rig.box.vms
        assert vms is not None
        boots = vms.boots("vm-01")
        wipe = ",".join(rig.spec("vm-01").hdd_serials)
        code, events, stderr = rig.rollout("--var", f"wipe={wipe}")
        assert code == 0, stderr[-3000:]
        assert {e["outcome"] for e in events if e["kind"] == "step.end"} == {"converged"}
        assert vms.boots("vm-01") == boots
