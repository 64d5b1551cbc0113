"""``Sandbox(vms=N)``: VM servers next to the sshd hosts, in the fake API as hybrid servers whose
disk groups match their virtual disks, in the inventory as root-login hosts of group ``vms``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleet.sandbox.ovh_api import TaskTimings
from fleet.sandbox.sandbox import Sandbox
from fleet.sandbox.vm_images import VmImages
from tests.vm.conftest import KeyPair, Ssh

pytestmark = pytest.mark.vm


@pytest.fixture
def sandbox(vm_images: VmImages, tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox", servers=2, vms=1, timings=TaskTimings.fast(), seed=5)
    try:
        box.start()
        yield box
    finally:
        box.stop()


def test_vm_servers_are_hybrid_root_login_hosts_of_the_vms_group(sandbox: Sandbox) -> None:
    inventory = yaml.safe_load((sandbox.dir / "inventory.yaml").read_text())
    assert list(inventory["all"]["children"]["vms"]["hosts"]) == ["vm-01"]
    vm = next(s for s in sandbox.servers if s.vm)
    entry = inventory["all"]["children"][vm.datacenter]["hosts"]["vm-01"]
    assert (entry["ansible_user"], entry["ansible_host"]) == ("root", vm.address)
    assert "vm-01" in inventory["all"]["children"]["vms"]["hosts"]
    assert sandbox.api is not None and sandbox.vms is not None
    groups = sandbox.api.model.hardware_json(vm.service)["diskGroups"]
    assert [(g["diskType"], g["numberOfDisks"]) for g in groups] == [("NVME", 2), ("HDD", 2)]
    key = KeyPair(sandbox.dir / "id_ed25519", (sandbox.dir / "id_ed25519.pub").read_text())
    ssh = Ssh(vm.address, sandbox.port, sandbox.dir / "known_hosts-test")
    ssh.pin(*sandbox.vms.disk_host_key("vm-01"))
    assert ssh.run(key, "hostname").stdout.strip() == vm.service
    assert set(sandbox.describe()["host_pids"]) == {"srv-001", "srv-002", "vm-01"}
