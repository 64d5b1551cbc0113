"""The hybrid-raid plan for real, the sample CI runs (tox env ``vm``): two QEMU hybrid servers
at once, the fake OVH API, ``fleet plan --probe`` then ``fleet rollout --approve``.

* vm-01, through OVH's rescue: its two HDDs sit on swapped SATA ports (sda in rescue is not
  sda on the installed system) and differ in size (12 and 8 GiB), beside a blank removable USB
  stick and a BMC virtual-media disk. The array must land on the two HDDs by serial, say how
  much of the larger one stays unused, and leave the stick's and the virtual disk's images
  byte for byte unchanged.
* vm-02, ``mode=live`` and no ``ovh_service`` in the inventory: built on the running system,
  rebooted over SSH (``systemctl reboot``), then rebooted once more by the test.

Both survive two reboots; a second rollout changes nothing and reboots nothing; the NVMe system
disks are fingerprinted from this machine's side before and after and must not change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fleet.sandbox.vm_images import VmImages
from tests.vm.rigs import (
    ROLLOUT_TIMEOUT,
    Rig,
    applied,
    check_array,
    ends,
    make_rig,
    reboot_over_ssh,
    vm_sandbox,
)

pytestmark = pytest.mark.vm

SHAPES = {
    "vm-01": {"hdd_ports": (1, 0), "hdd_sizes_mib": (12288, 8192), "usb_stick_mib": 256,
              "virtual_media_mib": 64},
    "vm-02": {},
}  # fmt: skip
VARS = {"vm-02": {"mode": "live"}}
RESCUE_STAGES = ("rescue", "partition", "array", "filesystem", "persist", "disk", "verify",
                 "reboot", "verify-again")  # fmt: skip
LIVE_STAGES = ("partition", "array", "filesystem", "persist", "verify", "reboot", "verify-again")


@pytest.fixture(scope="module")
def rig(
    vm_images: VmImages, ssh_client: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    with vm_sandbox(tmp_path_factory.mktemp("hybrid-sample"), SHAPES) as box:
        yield make_rig(box, tmp_path_factory.mktemp("state"), VARS, without_service=("vm-02",))


@pytest.fixture(scope="module")
def before(rig: Rig) -> dict[str, dict[str, str]]:
    vms = rig.box.vms
    assert vms is not None
    return {n: {**vms.nvme_checksums(n), **vms.usb_checksums(n)} for n in SHAPES}


@pytest.mark.timeout(ROLLOUT_TIMEOUT)  # boots and rollouts take minutes each under TCG
class TestSample:
    preview = ""

    def test_the_preview_shows_what_would_be_taken_and_changes_nothing(
        self, rig: Rig, before: dict[str, dict[str, str]]
    ) -> None:
        assert rig.box.vms is not None
        boots = {n: rig.box.vms.boots(n) for n in SHAPES}
        out = rig.cli("plan", "builtin:hybrid-raid", "--probe", "--json")
        assert out.returncode == 0, out.stderr[-2000:]
        doc = json.loads(out.stdout)
        hosts = {h["host"]: h for h in doc["hosts"]}
        one = hosts["vm-01"]["decisions"]
        serials = rig.spec("vm-01").hdd_serials
        assert sorted(d["serial"] for d in one["taken"]) == sorted(serials)
        refused = {d["serial"]: d["why"] for d in one["refused"]}
        assert refused[rig.spec("vm-01").usb_serial].startswith("removable USB medium")
        assert any(w.startswith("BMC virtual media (AMI Virtual HDisk0)") for w in refused.values())
        assert any("4.3 GB of it stays unused" in n for n in one["notes"])
        two = hosts["vm-02"]["decisions"]
        assert sorted(d["serial"] for d in two["taken"]) == sorted(rig.spec("vm-02").hdd_serials)
        assert all(h["digest"] for h in hosts.values())
        assert {n: rig.box.vms.boots(n) for n in SHAPES} == boots  # read-only: nothing rebooted
        TestSample.preview = doc["preview"]

    def test_rollout_of_the_approved_preview_builds_both(
        self, rig: Rig, before: dict[str, dict[str, str]]
    ) -> None:
        assert rig.box.vms is not None and self.preview
        code, events, stderr = rig.rollout("--approve", self.preview, "--batches", "100%")
        assert code == 0, stderr[-3000:]
        assert {h: e["outcome"] for h, e in ends(events).items()} == dict.fromkeys(SHAPES, "ok")
        done = applied(events)
        assert all(("vm-01", s) in done for s in RESCUE_STAGES), done
        assert all(("vm-02", s) in done for s in LIVE_STAGES), done
        waits = [
            e["data"]["what"] for e in events if e["kind"] == "host.wait" and e["host"] == "vm-02"
        ]
        assert any("systemctl reboot over SSH" in w for w in waits), waits
        for name in SHAPES:
            uuid = check_array(rig.box, name, 1, rig.spec(name).hdd_serials)
            (owned,) = rig.owned_arrays(name)
            assert owned.uuid == uuid and sorted(owned.serials) == sorted(
                rig.spec(name).hdd_serials
            )
            after = {**rig.box.vms.nvme_checksums(name), **rig.box.vms.usb_checksums(name)}
            assert after == before[name]  # NVMe system disks, USB stick, virtual media untouched

    def test_status_and_report_show_the_decisions(self, rig: Rig) -> None:
        runs = json.loads(rig.cli("status", "--json").stdout)
        run = runs[0]["id"]
        host = json.loads(rig.cli("status", run, "vm-01", "--json").stdout)
        record = host["record"]
        assert record["array_uuid"] and record["fs_uuid"]
        assert any("stays unused" in n for n in record["decisions"]["notes"])
        text = rig.cli("status", run, "vm-01").stdout
        assert "take /dev/sd" in text and "removable USB medium" in text
        report = rig.cli("report", run, "--format", "html").stdout
        assert "Disks and identities" in report and record["array_uuid"] in report

    def test_the_live_server_survives_a_second_reboot(self, rig: Rig) -> None:
        reboot_over_ssh(rig.box, "vm-02")
        check_array(rig.box, "vm-02", 1, rig.spec("vm-02").hdd_serials)

    def test_a_second_rollout_changes_nothing_and_reboots_nothing(self, rig: Rig) -> None:
        assert rig.box.vms is not None
        boots = {n: rig.box.vms.boots(n) for n in SHAPES}
        code, events, stderr = rig.rollout()
        assert code == 0, stderr[-3000:]
        assert {e["outcome"] for e in events if e["kind"] == "step.end"} == {"converged"}
        assert {n: rig.box.vms.boots(n) for n in SHAPES} == boots

    def test_plan_shows_the_destructive_steps(self, rig: Rig) -> None:
        out = rig.cli("plan", "builtin:hybrid-raid", "-l", "vm-01")
        assert "step create  DESTRUCTIVE" in out.stdout and "<facts.members>" in out.stdout
