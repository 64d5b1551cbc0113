"""RAID5 on three HDDs and RAID10 on four, through OVH's rescue, on two QEMU hybrid servers
(tox env ``vm-all``). Each survives two reboots (back to disk, then the plan's reboot), a second
rollout changes nothing and reboots nothing, and the NVMe system disks do not change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet.sandbox.vm_images import VmImages
from tests.vm.rigs import ROLLOUT_TIMEOUT, Rig, applied, check_array, ends, make_rig, vm_sandbox

pytestmark = pytest.mark.vm

SHAPES = {"vm-01": {"hdd_count": 3, "hdd_size_mib": 2048},
          "vm-02": {"hdd_count": 4, "hdd_size_mib": 2048}}  # fmt: skip
LEVELS = {"vm-01": 5, "vm-02": 10}


@pytest.fixture(scope="module")
def rig(
    vm_images: VmImages, ssh_client: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    with vm_sandbox(tmp_path_factory.mktemp("hybrid-levels"), SHAPES) as box:
        host_vars = {name: {"level": level} for name, level in LEVELS.items()}
        yield make_rig(box, tmp_path_factory.mktemp("state"), host_vars)


@pytest.mark.timeout(ROLLOUT_TIMEOUT)
class TestLevels:
    def test_raid5_and_raid10_through_rescue(self, rig: Rig) -> None:
        vms = rig.box.vms
        assert vms is not None
        before = {n: vms.nvme_checksums(n) for n in SHAPES}
        code, events, stderr = rig.rollout("--batches", "100%")
        assert code == 0, stderr[-3000:]
        assert {h: e["outcome"] for h, e in ends(events).items()} == dict.fromkeys(SHAPES, "ok")
        for name in SHAPES:
            for stage in ("rescue", "array", "persist", "disk", "verify", "reboot", "verify-again"):
                assert (name, stage) in applied(events), (name, stage)
            check_array(rig.box, name, LEVELS[name], rig.spec(name).hdd_serials)
            assert vms.nvme_checksums(name) == before[name]

    def test_a_second_rollout_changes_nothing_and_reboots_nothing(self, rig: Rig) -> None:
        vms = rig.box.vms
        assert vms is not None
        boots = {n: vms.boots(n) for n in SHAPES}
        code, events, stderr = rig.rollout()
        assert code == 0, stderr[-3000:]
        assert {e["outcome"] for e in events if e["kind"] == "step.end"} == {"converged"}
        assert {n: vms.boots(n) for n in SHAPES} == boots
