"""A local fleet to rehearse on: the fake OVH API plus one real sshd per server.

:class:`Sandbox` starts both, wires the API's power events to the hosts (a finished reboot task
restarts that host's sshd in the new boot mode), and writes what every fleet command needs to work
against it unchanged: ``fleet.toml``, ``inventory.yaml``, ``ovh.conf`` and the operator's SSH key.

Servers: ``srv-001``... spread over three datacenters; two in three are hybrid (NVMe system
group + HDD group), the others have only their system disks. With ``vms=N``, also ``vm-01``...:
QEMU virtual machines (:mod:`fleet.sandbox.vm`) that are real hybrid servers (md RAID1 system
on two NVMe disks, two SATA HDDs, rescue and installed system), logged in as root, listed in the
inventory's ``vms`` group.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.sandbox.hosts import HostFleet, HostSpec, allocate_addresses, generate_ed25519
from fleet.sandbox.ovh_api import Credentials, FakeOvhApi, ServerSpec, TaskTimings
from fleet.sandbox.vm import VmFleet, VmSpec
from fleet.sandbox.vm_images import ensure_images

DATACENTERS = ("gra3", "rbx8", "sbg5")
ENDPOINT_NAME = "fleet-sandbox"


@dataclass(frozen=True)
class SandboxServer:
    """One sandbox server: inventory name, OVH service name, address and placement."""

    name: str
    service: str
    address: str
    datacenter: str
    rack: str
    hybrid: bool
    vm: bool = False


def plan_servers(count: int, addresses: list[str]) -> list[SandboxServer]:
    out = []
    for i, address in enumerate(addresses[:count]):
        dc = DATACENTERS[i % len(DATACENTERS)]
        dashed = address.replace(".", "-")
        out.append(
            SandboxServer(
                name=f"srv-{i + 1:03d}",
                service=f"ns{3100000 + i}.ip-{dashed}.eu",
                address=address,
                datacenter=dc,
                rack=f"{dc.upper()}-R{(i // 3) % 8 + 1:02d}",
                hybrid=i % 3 != 2,
            )
        )
    return out


#: The VM hosts' disks, as their OVH hardware description gives them (GB).
VM_NVME_GB = 8
VM_HDD_GB = 4


def plan_vms(count: int, addresses: list[str]) -> list[SandboxServer]:
    """The VM servers ``vm-01``..., all hybrid, in the first datacenter."""
    dc = DATACENTERS[0]
    return [
        SandboxServer(
            name=f"vm-{i + 1:02d}",
            service=f"ns{3900000 + i}.ip-{address.replace('.', '-')}.eu",
            address=address,
            datacenter=dc,
            rack=f"{dc.upper()}-V01",
            hybrid=True,
            vm=True,
        )
        for i, address in enumerate(addresses[:count])
    ]


class Sandbox:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(
        self,
        directory: Path,
        *,
        servers: int = 10,
        port: int = 2222,
        seed: int | None = None,
        timings: TaskTimings | None = None,
        runtime_root: Path | None = None,
        vms: int = 0,
        vm_shapes: Mapping[str, Mapping[str, Any]] | None = None,
        jump_host: bool = False,
    ) -> None:
        """``vm_shapes``: per VM name (``vm-01``...), :class:`VmSpec` fields other than the
        default hybrid server's (``hdd_count``, ``hdd_ports``, ``usb_stick_mib``...)."""
        if not 0 <= vms <= 8:
            raise ValueError("a sandbox has 0 to 8 VM servers")
        if not (1 if vms == 0 else 0) <= servers <= 2000:
            raise ValueError("a sandbox has 1 to 2000 servers (0 with VM servers)")
        self.dir = directory
        self.count = servers
        self.vm_count = vms
        self.vm_shapes = {k: dict(v) for k, v in (vm_shapes or {}).items()}
        self.port = port
        self.seed = seed
        self.timings = timings
        self.runtime_root = runtime_root
        self.jump_host = jump_host  # the servers are reachable only through a jump host
        self.jump_address: str | None = None
        self.id = secrets.token_hex(4)
        self.credentials = Credentials.generate()
        self.control_token = secrets.token_hex(16)
        self.servers: list[SandboxServer] = []
        self.api: FakeOvhApi | None = None
        self.hosts: HostFleet | None = None
        self.vms: VmFleet | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        private, public = generate_ed25519()
        key = self.dir / "id_ed25519"
        key.write_text(private)
        key.chmod(0o600)
        (self.dir / "id_ed25519.pub").write_text(public + "\n")
        addresses = allocate_addresses(self.count + self.vm_count + 1, self.port)
        self.jump_address = addresses.pop() if self.jump_host else None
        self.servers = plan_servers(self.count, addresses)
        self.servers += plan_vms(self.vm_count, addresses[self.count :])
        try:
            self._start_hosts(public)
            self._start_api()
            self._start_vms(public)
            self._write_files()
        except BaseException:
            self.stop()
            raise

    def _start_hosts(self, public_key: str) -> None:
        specs = [
            HostSpec(s.name, s.address, self.port, hostname=s.service)
            for s in self.servers
            if not s.vm
        ]
        if not specs:
            return
        self.hosts = HostFleet(
            specs,
            state_dir=self.dir / "hosts",
            runtime_root=self.runtime_root,
            operator_public_key=public_key,
            sandbox_id=self.id,
            jump=HostSpec("jump", self.jump_address, self.port) if self.jump_address else None,
        )
        self.hosts.start()

    def _start_api(self) -> None:
        specs = [_server_spec(s, self.vm_shapes.get(s.name, {})) for s in self.servers]
        by_service = {s.service: s for s in self.servers}

        def on_power(service: str, event: Any) -> None:
            server = by_service[service]
            fleet = self.vms if server.vm else self.hosts
            if fleet is not None:
                fleet.on_power(server.name, event)

        self.api = FakeOvhApi(
            specs,
            self.credentials,
            timings=self.timings,
            on_power=on_power,
            control_token=self.control_token,
            seed=self.seed,
        )
        self.url = self.api.start()

    def _start_vms(self, public_key: str) -> None:
        """Boot the VM servers (images built first if needed) and wait until SSH answers."""
        specs = [
            VmSpec(
                s.name, s.address, self.port, hostname=s.service, **self.vm_shapes.get(s.name, {})
            )
            for s in self.servers
            if s.vm
        ]
        if not specs:
            return
        self.vms = VmFleet(
            specs,
            state_dir=self.dir / "vms",
            images=ensure_images(log_file=self.dir / "vm-images.log"),
            operator_public_key=public_key,
            sandbox_id=self.id,
            boot_mode=self._boot_mode,
        )
        self.vms.start()

    def _boot_mode(self, name: str) -> tuple[str | None, str | None]:
        """(mode, rescue key) a reboot of server ``name`` lands in now, per the API's boot id."""
        server = next(s for s in self.servers if s.name == name)
        if self.api is None:
            return None, None
        snapshot = self.api.snapshot(server.service)
        kernel = snapshot.boot_kernel
        mode = "disk" if kernel == "hd" else "rescue" if kernel.startswith("rescue") else None
        return mode, snapshot.rescue_ssh_key

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.vms is not None:
            self.vms.stop()
            self.vms = None
        if self.hosts is not None:
            self.hosts.stop()
            self.hosts = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- files for fleet -------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / "fleet.toml"

    def _write_files(self) -> None:
        _write(self.dir / "ovh.conf", self.ovh_conf())
        _write(self.dir / "inventory.yaml", self.inventory_yaml())
        _write(self.config_path, self.fleet_toml())
        _write(self.dir / "sandbox.json", json.dumps(self.describe(), indent=2))

    def ovh_conf(self) -> str:
        c = self.credentials
        return (
            "; python-ovh settings for the fleet sandbox (local fake API, throwaway keys)\n"
            f"[default]\nendpoint={ENDPOINT_NAME}\n\n[{ENDPOINT_NAME}]\n"
            f"application_key={c.application_key}\napplication_secret={c.application_secret}\n"
            f"consumer_key={c.consumer_key}\n"
        )

    def fleet_toml(self) -> str:
        d = self.dir
        return (
            "# Written by `fleet sandbox up`: every fleet command uses it while the sandbox is up.\n"
            f'inventory = "{d / "inventory.yaml"}"\n\n'
            f'[ovh]\nendpoint = "{ENDPOINT_NAME}"\nendpoint_url = "{self.url}"\n'
            f'config_file = "{d / "ovh.conf"}"\nrate_limit = 6000.0\n'
            "poll_interval = 0.25\nmax_poll_interval = 2.0\nretry_wait = 0.2\nretry_max_wait = 2.0\n"
            f'control_token = "{self.control_token}"\n\n'
            f'[ssh]\nkey_file = "{d / "id_ed25519"}"\n\n'
            f'[rescue]\nssh_public_key = "{d / "id_ed25519.pub"}"\n\n'
            # VMs boot under emulation: a reboot there takes minutes, not seconds.
            f"[reboot]\ntimeout = {900.0 if self.vm_count else 120.0}\nssh_poll = 0.5\n\n"
            "[rollout]\ninfra_retry_delay = 0.5\n"
        )

    def inventory_yaml(self) -> str:
        """An Ansible inventory of the sandbox's servers, grouped by datacenter. Which are hybrid
        is for OVH's data to say (``--limit hw:hybrid``), not for a hand-kept group."""
        user = self.hosts.login_user if self.hosts else "root"
        lines = [
            "# Written by `fleet sandbox up`: the sandbox's servers, by datacenter.",
            "all:",
            "  vars:",
            f"    ansible_user: {user}",
            f"    ansible_port: {self.port}",
            "    fleet: {labels: {env: sandbox}}",
            "  children:",
        ]
        for dc in DATACENTERS:
            members = [s for s in self.servers if s.datacenter == dc]
            if not members:
                continue
            lines += [f"    {dc}:", "      vars:", f"        fleet: {{datacenter: {dc}}}"]
            lines += ["      hosts:"]
            for s in members:
                role = "storage" if s.hybrid else "web"
                lines += [
                    f"        {s.name}:",
                    f"          ansible_host: {s.address}",
                    f"          fleet: {{ovh_service: {s.service}, rack: {s.rack}, "
                    f"labels: {{role: {role}}}}}",
                ]
                if s.vm:  # a VM's sshd is the real one: root logs in, as on OVH
                    lines += ["          ansible_user: root"]
        vms = [s for s in self.servers if s.vm]
        if vms:
            lines += ["    vms:", "      hosts:"] + [f"        {s.name}: {{}}" for s in vms]
        if self.jump_address:  # the sshd servers, reachable only through the jump host
            bastion = f"{user}@{self.jump_address}:{self.port}"
            lines += [
                "    behind_jump:",
                "      vars:",
                "        fleet:",
                f"          bastion: {bastion}",
                "      hosts:",
            ]
            lines += [f"        {s.name}: {{}}" for s in self.servers if not s.vm]
        return "\n".join(lines) + "\n"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": os.getpid(),
            "api": self.url,
            "port": self.port,
            "jump": f"{self.jump_address}:{self.port}" if self.jump_address else None,
            "servers": [s.__dict__ for s in self.servers],
            "host_pids": {
                **(self.hosts.pids() if self.hosts else {}),
                **(self.vms.pids() if self.vms else {}),
            },
        }


def _server_spec(server: SandboxServer, shape: Mapping[str, Any]) -> ServerSpec:
    """The fake API's view of a server; a VM's disk groups match its virtual disks."""
    if server.vm:
        sizes = shape.get("hdd_sizes_mib") or (shape.get("hdd_size_mib", 4096),)
        return ServerSpec(
            server.service,
            server.address,
            server.datacenter,
            server.rack,
            True,
            hdd_count=int(shape.get("hdd_count", 2)),
            hdd_size_gb=max(1, round(min(sizes) * 1024**2 / 1e9)) if shape else VM_HDD_GB,
            nvme_size_gb=VM_NVME_GB,
        )
    return ServerSpec(server.service, server.address, server.datacenter, server.rack, server.hybrid)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
