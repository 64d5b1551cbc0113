"""Shared parts of the hybrid-raid VM tests: a sandbox of (at most two) VM servers of given
shapes, an inventory written per test, ``fleet rollout`` with JSON events, SSH to the
installed system and to rescue, and the checks of a finished array."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.sandbox.ovh_api import TaskTimings
from fleet.sandbox.sandbox import Sandbox
from fleet.store.sqlite import SqliteStore
from tests.conftest import FleetCli
from tests.vm.conftest import VM_CACHE, KeyPair, Ssh

ROLLOUT_TIMEOUT = 3600


@dataclass
class Rig:
    box: Sandbox
    fleet: FleetCli
    inventory: Path
    state: Path

    def rollout(self, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        """``fleet rollout builtin:hybrid-raid`` on every host of the inventory, its
        destructive steps confirmed by name."""
        confirm = ["--confirm", ",".join(s.name for s in self.box.servers)]
        proc = self.fleet("-i", str(self.inventory), "rollout", "builtin:hybrid-raid", "-o", "json",
                          *confirm, *args, timeout=ROLLOUT_TIMEOUT)  # fmt: skip
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        return proc.returncode, events, proc.stderr

    def cli(self, *args: str) -> Any:
        return self.fleet("-i", str(self.inventory), *args, timeout=ROLLOUT_TIMEOUT)

    def owned_arrays(self, host: str) -> list[Any]:
        store = SqliteStore(self.state / "fleet.db")
        try:
            return store.owned_arrays(host)
        finally:
            store.close()

    def key(self) -> KeyPair:
        return key(self.box)

    def spec(self, name: str) -> Any:
        assert self.box.vms is not None
        return next(s for s in self.box.vms.specs if s.name == name)


@contextmanager
def vm_sandbox(directory: Path, shapes: Mapping[str, Mapping[str, Any]]) -> Iterator[Sandbox]:
    """Up to two VM servers (``vm-01``, ``vm-02``) of the given shapes, booted and settled."""
    assert 1 <= len(shapes) <= 2, "at most two VMs run at once on this machine"
    timings = TaskTimings(reboot_init=0.1, reboot_todo=0.1, reboot_doing=0.5, tick=0.05)
    sandbox = Sandbox(directory, servers=0, vms=len(shapes), timings=timings, seed=11,
                      vm_shapes=shapes)  # fmt: skip
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FLEET_VM_CACHE", str(VM_CACHE))  # where the vm_images fixture found them
            sandbox.start()
        for server in sandbox.servers:
            # A fresh VM wrote its first-boot files (host key, authorized_keys) moments ago; a
            # power cycle before they reach the disk would lose them.
            installed(sandbox, server.name).run(key(sandbox), "sync")
        yield sandbox
    finally:
        sandbox.stop()


def write_inventory(box: Sandbox, host_vars: Mapping[str, Mapping[str, Any]],
                    without_service: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """The sandbox's VM servers, with per-host vars; ``without_service`` get no ovh_service."""
    lines = ["all:", f"  vars: {{ansible_user: root, ansible_port: {box.port}}}", "  hosts:"]
    for s in box.servers:
        entry = [f"ansible_host: {s.address}"]
        if s.name not in without_service:
            entry.append(f"fleet: {{ovh_service: {s.service}}}")
        entry += [f"{k}: {json.dumps(v)}" for k, v in host_vars.get(s.name, {}).items()]
        lines.append(f"    {s.name}: {{{', '.join(entry)}}}")
    path = box.dir / "hybrid-inventory.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_rig(box: Sandbox, state: Path, host_vars: Mapping[str, Mapping[str, Any]],
             without_service: tuple[str, ...] = ()) -> Rig:  # fmt: skip
    inventory = write_inventory(box, host_vars, without_service)
    return Rig(box, FleetCli(state, box.config_path), inventory, state)


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


def disk_path(ssh: Ssh, k: KeyPair, serial: str, *, pin: bool = True) -> str:
    out = ssh.run(k, "lsblk -dnpo NAME,SERIAL", pin=pin).stdout
    return next(line.split()[0] for line in out.splitlines() if line.split()[-1:] == [serial])


def ends(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["host"]: e for e in events if e["kind"] == "host.end"}


def applied(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["host"], e["stage"]) for e in events
            if e["kind"] == "step.end" and e["outcome"] == "applied"}  # fmt: skip


def check_array(box: Sandbox, name: str, level: int, serials: tuple[str, ...]) -> str:
    """Booted from disk: fleet's array assembled, healthy, at the level, on exactly the disks
    with these serials, mounted at /opt by filesystem UUID; returns the array UUID."""
    ssh, k = installed(box, name), key(box)
    mount = json.loads(ssh.run(k, "findmnt -J -b -o SOURCE,TARGET,FSTYPE,UUID,LABEL /opt").stdout)
    fs = mount["filesystems"][0]
    assert (fs["target"], fs["fstype"], fs["label"]) == ("/opt", "ext4", "data")
    detail = dict(
        line.split("=", 1)
        for line in ssh.run(k, f"mdadm --detail --export {fs['source']}").stdout.splitlines()
        if "=" in line
    )
    assert detail["MD_LEVEL"] == f"raid{level}" and detail["MD_DEVICES"] == str(len(serials))
    assert detail["MD_NAME"].startswith("fleet-") and detail["MD_NAME"].endswith(":md4")
    members = [v for k_, v in detail.items() if k_.startswith("MD_DEVICE_") and k_.endswith("_DEV")]
    held = {ssh.run(k, f"lsblk -ndo PKNAME {m}").stdout.strip() for m in members}
    found = {ssh.run(k, f"lsblk -dno SERIAL /dev/{d}").stdout.strip() for d in held}
    assert found == set(serials), (found, serials)
    fstab = ssh.run(k, "cat /etc/fstab").stdout.splitlines()
    assert f"UUID={fs['uuid']} /opt ext4 defaults,nofail 0 2" in fstab
    assert ssh.run(k, "cat /etc/mdadm/mdadm.conf").stdout.count(f"UUID={detail['MD_UUID']}") == 1
    degraded = ssh.run(k, f"cat /sys/block/{fs['source'].rsplit('/', 1)[-1]}/md/degraded",
                       check=False).stdout.strip()  # fmt: skip
    if degraded not in ("", "0"):  # what the kernel said of the array and its disks, to tell why
        said = ssh.run(k, "cat /proc/mdstat; dmesg | grep -iE ' md|raid|ata[0-9]|I/O error' | "
                          "tail -40", check=False).stdout  # fmt: skip
        raise AssertionError(f"{name}: {fs['source']} is degraded:\n{said}")
    return detail["MD_UUID"]


def reboot_over_ssh(box: Sandbox, name: str, timeout: float = 900) -> None:
    """``systemctl reboot`` on the installed system, then wait until it answers again."""
    assert box.vms is not None
    boots = box.vms.boots(name)
    ssh, k = installed(box, name), key(box)
    ssh.run(k, "sync; nohup sh -c 'sleep 2; systemctl reboot' </dev/null >/dev/null 2>&1 &")
    deadline = time.monotonic() + timeout
    while box.vms.boots(name) == boots:  # QEMU exits at the guest's reboot and starts again
        assert time.monotonic() < deadline, f"{name} did not reboot"
        time.sleep(1)
    box.vms.wait_ssh(name, max(1.0, deadline - time.monotonic()))
