"""The VM hosts themselves: a QEMU machine that boots like an OVH hybrid server, switched between
its installed system and the rescue by the fake OVH API, and cleaned up without a trace.

One VM serves the ordered tests of this module (each boot costs about a minute under TCG).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ovh
import pytest

from fleet.sandbox.ovh_api import Credentials, FakeOvhApi, ServerSpec, TaskTimings
from fleet.sandbox.vm import VmFleet, VmSpec, free_port, stop_recorded
from fleet.sandbox.vm_images import VmImages
from tests.vm.conftest import VM_ACCEL, KeyPair, Ssh

pytestmark = pytest.mark.vm

SERVICE = "ns3900001.ip-127-0-0-1.eu"
LSBLK = "lsblk -J -b -o NAME,PATH,SIZE,TYPE,ROTA,TRAN,MODEL,SERIAL,FSTYPE,LABEL,MOUNTPOINT,PKNAME"
BOOT_TIMEOUT = 600.0


@dataclass
class Rig:
    api: FakeOvhApi
    client: Any
    vms: VmFleet
    name: str
    ssh: Ssh
    keys: dict[str, KeyPair]


@pytest.fixture(scope="module")
def rig(
    vm_images: VmImages,
    keys: dict[str, KeyPair],
    ssh_client: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    state = tmp_path_factory.mktemp("vm-state")
    creds = Credentials.generate(random.Random(4))
    spec = ServerSpec(SERVICE, "127.0.0.1", "gra3", "R1", True, hdd_size_gb=4, nvme_size_gb=8)
    vm = VmSpec("vm-01", "127.0.0.1", free_port(), hostname=SERVICE)
    timings = TaskTimings(reboot_init=0.1, reboot_todo=0.1, reboot_doing=0.5, tick=0.05)
    api = FakeOvhApi([spec], creds, timings=timings, seed=3)

    def boot_mode(name: str) -> tuple[str | None, str | None]:
        snapshot = api.snapshot(SERVICE)
        mode = {"hd": "disk"}.get(snapshot.boot_kernel, "rescue")
        return mode, snapshot.rescue_ssh_key

    vms = VmFleet(
        [vm],
        state_dir=state,
        images=vm_images,
        operator_public_key=keys["operator"].public,
        sandbox_id=f"t{os.getpid()}",
        boot_mode=boot_mode,
        accel=VM_ACCEL,
    )
    api.set_power_hook(lambda service, event: vms.on_power("vm-01", event))
    endpoint = f"fleet-vm-test-{uuid.uuid4().hex[:8]}"
    try:
        ovh.client.ENDPOINTS[endpoint] = api.start()
        client = ovh.Client(
            endpoint=endpoint,
            application_key=creds.application_key,
            application_secret=creds.application_secret,
            consumer_key=creds.consumer_key,
        )
        vms.start(timeout=BOOT_TIMEOUT)
        ssh = Ssh("127.0.0.1", vm.port, state / "known_hosts")
        ssh.pin(*vms.disk_host_key("vm-01"))
        yield Rig(api, client, vms, "vm-01", ssh, keys)
    finally:
        vms.stop()
        api.stop()
        ovh.client.ENDPOINTS.pop(endpoint, None)


def _children(tree: dict[str, Any], name: str) -> list[dict[str, Any]]:
    device = next(d for d in tree["blockdevices"] if d["name"] == name)
    return list(device.get("children", []))


def _boot_id(client: Any, kernel: str) -> int:
    for boot_id in client.get(f"/dedicated/server/{SERVICE}/boot"):
        if client.get(f"/dedicated/server/{SERVICE}/boot/{boot_id}")["kernel"] == kernel:
            return int(boot_id)
    raise AssertionError(f"no {kernel} boot")


def _api_reboot(rig: Rig) -> None:
    task = rig.client.post(f"/dedicated/server/{SERVICE}/reboot")
    deadline = time.monotonic() + 60
    while rig.client.get(f"/dedicated/server/{SERVICE}/task/{task['taskId']}")["status"] != "done":
        assert time.monotonic() < deadline, "the reboot task did not finish"
        time.sleep(0.2)


def test_installed_system_boots_from_md3_with_the_ovh_layout(rig: Rig) -> None:
    out = rig.ssh.run(rig.keys["operator"], f"hostname; findmnt -no SOURCE /; {LSBLK}").stdout
    hostname, root, listing = out.split("\n", 2)
    tree = json.loads(listing)
    assert (hostname, root) == (SERVICE, "/dev/md3")
    nvme0 = {p["name"]: p for p in _children(tree, "nvme0n1")}
    assert sorted(nvme0) == [f"nvme0n1p{i}" for i in range(1, 6)]
    assert nvme0["nvme0n1p1"]["size"] == 535822336
    assert (nvme0["nvme0n1p1"]["fstype"], nvme0["nvme0n1p1"]["label"]) == ("vfat", "EFI_SYSPART")
    assert (nvme0["nvme0n1p4"]["fstype"], nvme0["nvme0n1p4"]["label"]) == ("swap", "swap-nvme0n1p4")
    assert (nvme0["nvme0n1p5"]["fstype"], nvme0["nvme0n1p5"]["label"]) == ("iso9660", "config-2")
    md3 = nvme0["nvme0n1p3"]["children"][0]
    assert (md3["name"], md3["type"], md3["mountpoint"]) == ("md3", "raid1", "/")
    assert nvme0["nvme0n1p2"]["children"][0]["mountpoint"] == "/boot"
    assert len(_children(tree, "nvme1n1")) == 4
    hdds = [d for d in tree["blockdevices"] if d["name"] in ("sda", "sdb")]
    spec = rig.vms.specs[0]
    assert [(d["rota"], d["tran"], d["model"]) for d in hdds] == [
        (True, "sata", "HGST HUS726040AL")
    ] * 2
    assert sorted(d["serial"] for d in hdds) == sorted(spec.hdd_serials)
    assert all(d["size"] == spec.hdd_size_mib << 20 and "children" not in d for d in hdds)


def test_api_reboot_into_rescue_brings_a_new_host_key_and_the_rescue_identity(rig: Rig) -> None:
    before = rig.vms.nvme_checksums(rig.name)
    rescue_id = _boot_id(rig.client, "rescue12-customer")
    rig.client.put(
        f"/dedicated/server/{SERVICE}", bootId=rescue_id, rescueSshKey=rig.keys["rescue"].public
    )
    _api_reboot(rig)
    rig.vms.wait_ssh(rig.name, BOOT_TIMEOUT)
    assert rig.vms.mode(rig.name) == "rescue"
    rig.ssh.forget()
    out = rig.ssh.run(rig.keys["rescue"], "hostname; cat /proc/mdstat", pin=False).stdout
    assert out.splitlines()[0] == "rescue12-customer-eu"
    assert rig.ssh.host_key() != rig.vms.disk_host_key(rig.name)
    after = rig.vms.nvme_checksums(rig.name)
    assert {k: v for k, v in after.items() if k.endswith((":gpt", ":md", "p5"))} == {
        k: v for k, v in before.items() if k.endswith((":gpt", ":md", "p5"))
    }


def test_only_the_rescue_key_gets_into_rescue(rig: Rig) -> None:
    assert rig.vms.mode(rig.name) == "rescue", "runs after the rescue boot"
    for other in ("operator", "stranger"):
        refused = rig.ssh.run(rig.keys[other], "true", check=False)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert rig.ssh.run(rig.keys["rescue"], "echo in").stdout == "in\n"


def test_guest_reboot_lands_where_the_api_boots_with_the_installed_key_kept(rig: Rig) -> None:
    assert rig.vms.mode(rig.name) == "rescue", "runs after the rescue boot"
    boots = rig.vms.boots(rig.name)
    rig.client.put(f"/dedicated/server/{SERVICE}", bootId=_boot_id(rig.client, "hd"))
    rig.ssh.run(rig.keys["rescue"], "systemctl reboot", check=False)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while rig.vms.boots(rig.name) == boots:  # QEMU exits on the guest's reboot, then restarts
        assert time.monotonic() < deadline, "the guest did not reboot"
        time.sleep(0.5)
    rig.vms.wait_ssh(rig.name, BOOT_TIMEOUT)
    rig.ssh.pin(*rig.vms.disk_host_key(rig.name))  # the key of the first boot, pinned
    out = rig.ssh.run(rig.keys["operator"], "hostname; findmnt -no SOURCE /").stdout
    assert out.split() == [SERVICE, "/dev/md3"]
    assert rig.vms.mode(rig.name) == "disk"
    refused = rig.ssh.run(rig.keys["rescue"], "true", check=False)
    assert refused.returncode == 255


def test_stop_leaves_no_qemu_process_and_no_overlay(
    vm_images: VmImages, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    specs = [VmSpec(f"vm-{i}", "127.0.0.1", free_port(), hdd_stub=True) for i in (1, 2)]
    vms = VmFleet(
        specs,
        state_dir=tmp_path,
        images=vm_images,
        operator_public_key=keys["operator"].public,
        sandbox_id="stoptest",
        accel=VM_ACCEL,
    )
    try:
        vms.start(wait=False)
        pids = vms.pids()
        overlays = sorted(tmp_path.glob("vm-*/*.qcow2"))
        assert len(pids) == 2 and len(overlays) == 8
        assert all(Path(f"/proc/{pid}").exists() for pid in pids.values())
        assert vms.qmp("vm-1", "query-status")["status"] == "running"
    finally:
        vms.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert not any(path.exists() for path in overlays)
    assert not list(tmp_path.glob("vm-*"))


def test_a_crashed_manager_is_cleaned_up_from_its_record(
    vm_images: VmImages, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    vms = VmFleet(
        [VmSpec("vm-1", "127.0.0.1", free_port())],
        state_dir=tmp_path,
        images=vm_images,
        operator_public_key=keys["operator"].public,
        sandbox_id="crashtest",
        accel=VM_ACCEL,
    )
    try:
        vms.start(wait=False)
        pid = vms.pids()["vm-1"]
        assert stop_recorded(tmp_path) == 1  # as after the manager's process died
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
        assert not (tmp_path / "vm-1").exists()
    finally:
        vms.stop()
