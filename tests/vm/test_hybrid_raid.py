"""The hybrid-raid plan for real: QEMU hybrid servers, the fake OVH API, ``fleet rollout``.

Two sandboxes of three VM servers, one after the other (more VMs booting at once on a small
machine under TCG make systemd give up waiting for /boot):

* rollout: three blank HDD pairs; one rollout in batches 1,100% builds RAID1 on vm-01 and RAID0
  on the others (inventory vars), through rescue; a second rollout changes nothing;
* safety: vm-01's first HDD carries an ext4 filesystem with a file: refused without ``wipe``,
  the file is still there afterwards; vm-02 has only one HDD: the guard fails it, which spends
  the failure budget, so vm-03 (blank, behind it in the batches) is never started.

The NVMe system disks are fingerprinted from this machine's side before and after (GPT, ESP,
swap, config-2 byte for byte, md member identities) and must not change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.sandbox import sandbox as sandbox_module
from fleet.sandbox.ovh_api import TaskTimings
from fleet.sandbox.sandbox import Sandbox
from fleet.sandbox.vm import VmSpec
from fleet.sandbox.vm_images import VmImages
from tests.conftest import FleetCli
from tests.vm.conftest import VM_CACHE, KeyPair, Ssh

pytestmark = pytest.mark.vm

ROLLOUT = ("vm-01", "vm-02", "vm-03")
LEVELS = {"vm-01": 1, "vm-02": 0, "vm-03": 0}  # rollout sandbox; the safety one uses RAID1
ROLLOUT_TIMEOUT = 3600


def _spec_factory(single_hdd: str) -> Any:
    """VmSpec, except that ``single_hdd`` gets one HDD (the sandbox builds default specs)."""

    def make(name: str, *args: Any, **kwargs: Any) -> VmSpec:
        if name == single_hdd:
            kwargs["hdd_count"] = 1
        return VmSpec(name, *args, **kwargs)

    return make


@contextmanager
def vm_sandbox(directory: Path, single_hdd: str | None = None) -> Iterator[Sandbox]:
    """Three VM servers, booted and settled; ``single_hdd`` gets only one HDD."""
    timings = TaskTimings(reboot_init=0.1, reboot_todo=0.1, reboot_doing=0.5, tick=0.05)
    sandbox = Sandbox(directory, servers=0, vms=3, timings=timings, seed=11)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FLEET_VM_CACHE", str(VM_CACHE))  # where the vm_images fixture found them
            if single_hdd:
                patch.setattr(sandbox_module, "VmSpec", _spec_factory(single_hdd))
            sandbox.start()
        for server in sandbox.servers:
            # A fresh VM wrote its first-boot files (host key, authorized_keys) moments ago; a
            # power cycle before they reach the disk would lose them (a real server has long
            # settled by the time it is provisioned).
            installed(sandbox, server.name).run(key(sandbox), "sync")
        yield sandbox
    finally:
        sandbox.stop()


def write_inventory(box: Sandbox, levels: dict[str, int]) -> Path:
    """The sandbox's VM servers with the RAID level of each as an inventory var."""
    lines = ["all:", f"  vars: {{ansible_user: root, ansible_port: {box.port}}}", "  hosts:"]
    for s in box.servers:
        entry = (
            f"ansible_host: {s.address}, fleet: {{ovh_service: {s.service}}}, "
            f"level: {levels.get(s.name, 1)}"
        )
        lines.append(f"    {s.name}: {{{entry}}}")
    path = box.dir / "hybrid-inventory.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Rig:
    box: Sandbox
    fleet: FleetCli
    inventory: Path


@pytest.fixture(scope="class")
def rollout_rig(
    vm_images: VmImages, ssh_client: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    with vm_sandbox(tmp_path_factory.mktemp("hybrid-rollout")) as box:
        state = tmp_path_factory.mktemp("state")
        yield Rig(box, FleetCli(state, box.config_path), write_inventory(box, LEVELS))


@pytest.fixture(scope="class")
def safety_rig(
    vm_images: VmImages, ssh_client: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    with vm_sandbox(tmp_path_factory.mktemp("hybrid-safety"), single_hdd="vm-02") as box:
        state = tmp_path_factory.mktemp("state")
        yield Rig(box, FleetCli(state, box.config_path), write_inventory(box, {}))


def rollout(fleet: FleetCli, inventory: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = fleet("-i", str(inventory), "rollout", "builtin:hybrid-raid", "-o", "json", *args,
                 timeout=ROLLOUT_TIMEOUT)  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr


def key(box: Sandbox) -> KeyPair:
    return KeyPair(box.dir / "id_ed25519", (box.dir / "id_ed25519.pub").read_text().strip())


def installed(box: Sandbox, name: str) -> Ssh:
    """SSH to the installed system of ``name``, its host key pinned."""
    assert box.vms is not None
    server = next(s for s in box.servers if s.name == name)
    ssh = Ssh(server.address, box.port, box.dir / f"known_hosts-{name}")
    ssh.pin(*box.vms.disk_host_key(name))
    return ssh


def rescue(box: Sandbox, name: str) -> Ssh:
    """SSH to the rescue system of ``name`` (a new host key at every rescue boot)."""
    server = next(s for s in box.servers if s.name == name)
    ssh = Ssh(server.address, box.port, box.dir / f"known_hosts-{name}-rescue")
    ssh.forget()
    return ssh


def hdd_path(ssh: Ssh, k: KeyPair, serial: str, *, pin: bool = True) -> str:
    out = ssh.run(k, "lsblk -dnpo NAME,SERIAL", pin=pin).stdout
    return next(line.split()[0] for line in out.splitlines() if line.split()[-1] == serial)


def check_array(box: Sandbox, name: str, level: int) -> None:
    """Booted from disk: the array assembled, healthy, mounted at /opt by filesystem UUID."""
    ssh, k = installed(box, name), key(box)
    mount = json.loads(ssh.run(k, "findmnt -J -b -o SOURCE,TARGET,FSTYPE,UUID,LABEL /opt").stdout)
    fs = mount["filesystems"][0]
    assert (fs["target"], fs["fstype"], fs["label"]) == ("/opt", "ext4", "data")
    detail = ssh.run(k, f"mdadm --detail --export {fs['source']}").stdout.splitlines()
    assert (
        f"MD_LEVEL=raid{level}" in detail and "MD_DEVICES=2" in detail and "MD_NAME=md4" in detail
    )
    uuid = next(line.split("=", 1)[1] for line in detail if line.startswith("MD_UUID="))
    fstab = ssh.run(k, "cat /etc/fstab").stdout.splitlines()
    assert f"UUID={fs['uuid']} /opt ext4 defaults,nofail 0 2" in fstab
    assert not [line for line in fstab if "/dev/md" in line]
    conf = ssh.run(k, "cat /etc/mdadm/mdadm.conf").stdout
    assert conf.count(f"UUID={uuid}") == 1
    mdstat = ssh.run(k, "cat /proc/mdstat").stdout
    assert "_" not in mdstat.split(f"{fs['source'].rsplit('/', 1)[-1]} :", 1)[1].split("\n\n")[0]


@pytest.mark.timeout(ROLLOUT_TIMEOUT)  # boots and rollouts take minutes each under TCG
class TestRollout:
    def test_raid1_and_raid0_through_rescue_in_batches(self, rollout_rig: Rig) -> None:
        box, fleet, inventory = rollout_rig.box, rollout_rig.fleet, rollout_rig.inventory
        assert box.vms is not None
        before = {n: box.vms.nvme_checksums(n) for n in ROLLOUT}
        code, events, stderr = rollout(
            fleet, inventory, "-l", ",".join(ROLLOUT), "--batches", "1,100%"
        )
        assert code == 0, stderr[-3000:]
        ends = {e["host"]: e["outcome"] for e in events if e["kind"] == "host.end"}
        assert ends == dict.fromkeys(ROLLOUT, "ok")
        starts = [e["host"] for e in events if e["kind"] == "host.start"]
        assert starts[0] == "vm-01" and set(starts[1:]) == {"vm-02", "vm-03"}  # canary first
        applied = {
            (e["host"], e["stage"])
            for e in events
            if e["kind"] == "step.end" and e["outcome"] == "applied"
        }
        stages = (
            "rescue",
            "array",
            "filesystem",
            "persist",
            "disk",
            "verify",
            "reboot",
            "verify-again",
        )
        for name in ROLLOUT:  # through rescue, back to disk, and a second reboot verified
            for stage in stages:
                assert (name, stage) in applied, (name, stage)
        for name in ROLLOUT:
            check_array(box, name, LEVELS[name])
            assert box.vms.nvme_checksums(name) == before[name]

    def test_a_second_rollout_changes_nothing(self, rollout_rig: Rig) -> None:
        box = rollout_rig.box
        assert box.vms is not None
        boots = {n: box.vms.boots(n) for n in ROLLOUT}
        code, events, stderr = rollout(
            rollout_rig.fleet, rollout_rig.inventory, "-l", ",".join(ROLLOUT)
        )
        assert code == 0, stderr[-3000:]
        assert {e["outcome"] for e in events if e["kind"] == "step.end"} == {"converged"}
        assert {n: box.vms.boots(n) for n in ROLLOUT} == boots  # nothing rebooted

    def test_plan_shows_the_destructive_steps(self, rollout_rig: Rig) -> None:
        fleet, inventory = rollout_rig.fleet, rollout_rig.inventory
        out = fleet("-i", str(inventory), "plan", "builtin:hybrid-raid", "-l", "vm-01", check=0)
        assert "step create  DESTRUCTIVE" in out.stdout and "<facts.members>" in out.stdout


@pytest.mark.timeout(ROLLOUT_TIMEOUT)
class TestSafety:
    def test_hdd_with_a_file_is_refused_without_wipe_and_the_file_stays(
        self, safety_rig: Rig
    ) -> None:
        box = safety_rig.box
        assert box.vms is not None
        k, serial = key(box), box.vms.specs[0].hdd_serials[0]
        ssh = installed(box, "vm-01")
        disk = hdd_path(ssh, k, serial)
        ssh.run(k, f"mkfs.ext4 -q -F -L precious {disk} && mount {disk} /mnt && "
                   "echo keep-me > /mnt/precious.txt && sync && umount /mnt")  # fmt: skip
        before = box.vms.nvme_checksums("vm-01")
        code, events, _ = rollout(safety_rig.fleet, safety_rig.inventory, "-l", "vm-01")
        assert code != 0
        end = next(e for e in events if e["kind"] == "host.end")
        assert end["outcome"] == "failed" and end["stage"] == "guard"
        assert (
            f"serial {serial}" in end["excerpt"] and "ext4 filesystem 'precious'" in end["excerpt"]
        )
        assert "list its serial in `wipe`" in end["excerpt"]
        assert not [e for e in events if e.get("stage") in ("partition", "array", "filesystem")]
        there = rescue(box, "vm-01")  # the host stays in rescue, where the guard stopped
        disk = hdd_path(there, k, serial, pin=False)
        read = there.run(
            k, f"mount -o ro {disk} /mnt && cat /mnt/precious.txt; umount /mnt", pin=False
        )
        assert read.stdout.strip() == "keep-me"
        assert box.vms.nvme_checksums("vm-01") == before

    def test_one_hdd_missing_fails_the_guard_and_spends_the_budget(self, safety_rig: Rig) -> None:
        box = safety_rig.box
        assert box.vms is not None
        before = box.vms.nvme_checksums("vm-02")
        code, events, stderr = rollout(
            safety_rig.fleet, safety_rig.inventory,
            "-l", "vm-02,vm-03", "--batches", "1,100%", "--max-failures", "0",
        )  # fmt: skip
        assert code == 2, stderr[-3000:]  # halted
        end = next(e for e in events if e["kind"] == "host.end" and e["host"] == "vm-02")
        assert (end["outcome"], end["stage"], end["data"]["failure"]) == (
            "failed",
            "guard",
            "payload",
        )
        assert "RAID1 needs at least 2 disks and the rule matches 1" in end["excerpt"]
        assert "failure budget spent: 1 of 1 started hosts failed" in stderr
        assert "vm-03" not in {e.get("host") for e in events if e["kind"] == "host.start"}
        assert box.vms.nvme_checksums("vm-02") == before
