"""A local fleet to rehearse on: the fake OVH API plus one real sshd per server.

:class:`Sandbox` starts both, wires the API's power events to the hosts (a finished reboot task
restarts that host's sshd in the new boot mode), and writes what every fleet command needs to work
against it unchanged: ``fleet.toml``, ``inventory.yaml``, ``ovh.conf`` and the operator's SSH key.

Servers: ``srv-001``... spread over three datacenters; two in three are hybrid (NVMe system
group + HDD group), the others have only their system disks.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.sandbox.hosts import HostFleet, HostSpec, allocate_addresses, generate_ed25519
from fleet.sandbox.ovh_api import Credentials, FakeOvhApi, ServerSpec, TaskTimings

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
    ) -> None:
        if not 1 <= servers <= 2000:
            raise ValueError("a sandbox has 1 to 2000 servers")
        self.dir = directory
        self.count = servers
        self.port = port
        self.seed = seed
        self.timings = timings
        self.runtime_root = runtime_root
        self.id = secrets.token_hex(4)
        self.credentials = Credentials.generate()
        self.control_token = secrets.token_hex(16)
        self.servers: list[SandboxServer] = []
        self.api: FakeOvhApi | None = None
        self.hosts: HostFleet | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        private, public = generate_ed25519()
        key = self.dir / "id_ed25519"
        key.write_text(private)
        key.chmod(0o600)
        (self.dir / "id_ed25519.pub").write_text(public + "\n")
        self.servers = plan_servers(self.count, allocate_addresses(self.count, self.port))
        try:
            self._start_hosts(public)
            self._start_api()
            self._write_files()
        except BaseException:
            self.stop()
            raise

    def _start_hosts(self, public_key: str) -> None:
        specs = [HostSpec(s.name, s.address, self.port, hostname=s.service) for s in self.servers]
        self.hosts = HostFleet(
            specs,
            state_dir=self.dir / "hosts",
            runtime_root=self.runtime_root,
            operator_public_key=public_key,
            sandbox_id=self.id,
        )
        self.hosts.start()

    def _start_api(self) -> None:
        specs = [
            ServerSpec(s.service, s.address, s.datacenter, s.rack, s.hybrid) for s in self.servers
        ]
        by_service = {s.service: s.name for s in self.servers}
        hosts = self.hosts
        assert hosts is not None

        def on_power(service: str, event: Any) -> None:
            hosts.on_power(by_service[service], event)

        self.api = FakeOvhApi(
            specs,
            self.credentials,
            timings=self.timings,
            on_power=on_power,
            control_token=self.control_token,
            seed=self.seed,
        )
        self.url = self.api.start()

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
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
            "[reboot]\ntimeout = 120.0\nssh_poll = 0.5\n\n"
            "[rollout]\ninfra_retry_delay = 0.5\n"
        )

    def inventory_yaml(self) -> str:
        user = self.hosts.login_user if self.hosts else "root"
        lines = [
            "# Written by `fleet sandbox up`: the sandbox's servers, by datacenter.",
            "all:",
            "  vars:",
            f"    user: {user}",
            f"    port: {self.port}",
            "    labels: {env: sandbox}",
            "  children:",
        ]
        for dc in DATACENTERS:
            members = [s for s in self.servers if s.datacenter == dc]
            if not members:
                continue
            lines += [f"    {dc}:", "      vars:", f"        datacenter: {dc}", "      hosts:"]
            for s in members:
                role = "storage" if s.hybrid else "web"
                lines += [
                    f"        {s.name}:",
                    f"          address: {s.address}",
                    f"          ovh_service: {s.service}",
                    f"          rack: {s.rack}",
                    f"          labels: {{role: {role}}}",
                ]
        hybrid = [s for s in self.servers if s.hybrid]
        if hybrid:  # also a group, so `--limit hybrid` works without asking OVH
            lines += ["    hybrid:", "      hosts:"] + [f"        {s.name}: {{}}" for s in hybrid]
        return "\n".join(lines) + "\n"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": os.getpid(),
            "api": self.url,
            "port": self.port,
            "servers": [s.__dict__ for s in self.servers],
            "host_pids": self.hosts.pids() if self.hosts else {},
        }


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
