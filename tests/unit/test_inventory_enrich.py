"""OVH enrichment of the inventory, against an in-memory server source."""

from __future__ import annotations

import logging
import textwrap
import threading
from typing import TYPE_CHECKING

import pytest

from fleet.errors import InventoryError, ProviderNotFound, ProviderTransient
from fleet.inventory import Inventory, enrich, from_provider, load_inventory
from fleet.provider.base import DiskGroup, Hardware, Server

if TYPE_CHECKING:
    from pathlib import Path

HYBRID = Hardware("hybrid", (DiskGroup(1, "NVME", 2, 960), DiskGroup(2, "HDD", 4, 8000)))
NVME_ONLY = Hardware("fast", (DiskGroup(1, "NVME", 2, 1920),))


def server(name: str, ip: str, datacenter: str = "gra3", rack: str = "G102") -> Server:
    return Server(name, ip, datacenter, rack, "ok", 1, None, "debian12_64", "poweron")


class FakeServers:
    """list_servers/server/hardware from a dict; thread-safe; can require concurrent callers."""

    def __init__(
        self,
        servers: dict[str, tuple[Server, Hardware]],
        barrier: threading.Barrier | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.servers = servers
        self.barrier = barrier
        self.fail = fail
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def _lookup(self, call: str, name: str) -> tuple[Server, Hardware]:
        with self.lock:
            self.calls.append((call, name))
        if self.barrier is not None and call == "server":
            self.barrier.wait()
        if self.fail is not None:
            raise self.fail
        if name not in self.servers:
            raise ProviderNotFound("this service does not exist", server=name, status=404)
        return self.servers[name]

    def list_servers(self) -> list[str]:
        with self.lock:
            self.calls.append(("list", ""))
        return list(self.servers)

    def server(self, name: str) -> Server:
        return self._lookup("server", name)[0]

    def hardware(self, name: str) -> Hardware:
        return self._lookup("hardware", name)[1]


ACCOUNT = {
    "ns1.ip-1.eu": (server("ns1.ip-1.eu", "192.0.2.1", "rbx8", "R1"), HYBRID),
    "ns2.ip-2.eu": (server("ns2.ip-2.eu", "192.0.2.2", "gra3", "G7"), NVME_ONLY),
    "ns3.ip-3.eu": (server("ns3.ip-3.eu", "192.0.2.3", "sbg5", "S3"), HYBRID),
}


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "inv.yaml"
    path.write_text(
        textwrap.dedent(
            """
            all:
              children:
                storage:
                  hosts:
                    stor-1:
                      ansible_host: 10.1.0.1
                      fleet: {datacenter: gra3, ovh_service: ns1.ip-1.eu}
                    stor-2: {fleet: {ovh_service: ns2.ip-2.eu, rack: MINE}}
                plain:
                  hosts:
                    web-1: {ansible_host: 10.1.0.9}
            """
        ),
        encoding="utf-8",
    )
    return load_inventory([path])


def test_yaml_wins_and_the_api_fills_the_gaps(
    inventory: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fleet.inventory"):
        enriched = enrich(inventory, FakeServers(ACCOUNT))
    stor1, stor2, web = enriched.hosts
    assert (stor1.address, stor1.datacenter, stor1.rack) == ("10.1.0.1", "gra3", "R1")
    # the address is the inventory's (the host name, as Ansible), never OVH's
    assert (stor2.address, stor2.datacenter, stor2.rack) == ("stor-2", "gra3", "MINE")
    assert (stor1.model, stor2.model) == ("hybrid", "fast")
    assert stor1.hybrid and stor1.disks is not None and stor1.disks.hdd_count == 4
    assert not stor2.hybrid and stor2.disks is not None and stor2.disks.system_type == "NVME"
    assert web == inventory.require("web-1")
    assert stor1.groups == ("storage",) and stor1.source == inventory.require("stor-1").source
    assert enriched.groups == inventory.groups
    assert "inventory datacenter 'gra3' differs from OVH's 'rbx8'" in caplog.text
    enriched.check_addresses()
    assert [h.name for h in enriched.select("hybrid")] == ["stor-1"]
    assert [h.name for h in enriched.select("hw:hybrid")] == ["stor-1"]
    assert [h.name for h in enriched.select("!hw:hybrid")] == ["stor-2", "web-1"]
    assert [h.name for h in enriched.select("dc:gra3,&storage")] == ["stor-1", "stor-2"]


def test_unlisted_servers_only_when_asked(inventory: Inventory) -> None:
    source = FakeServers(ACCOUNT)
    assert len(enrich(inventory, source).hosts) == 3
    assert ("list", "") not in source.calls
    assert ("server", "ns3.ip-3.eu") not in source.calls

    enriched = enrich(inventory, source, include_unlisted=True)
    assert [h.name for h in enriched.hosts] == ["stor-1", "stor-2", "web-1", "ns3.ip-3.eu"]
    added = enriched.require("ns3.ip-3.eu")
    assert (added.address, added.port, added.user, added.service_name) == (
        "192.0.2.3", 22, "root", "ns3.ip-3.eu",
    )  # fmt: skip
    assert (added.datacenter, added.rack, added.source, added.groups) == ("sbg5", "S3", "ovh", ())
    assert added.hybrid
    assert enriched.groups["all"] == ("stor-1", "stor-2", "web-1", "ns3.ip-3.eu")
    assert enriched.groups["storage"] == ("stor-1", "stor-2")


def test_from_provider_lists_the_whole_account() -> None:
    inv = from_provider(FakeServers(ACCOUNT))
    assert [h.name for h in inv.hosts] == sorted(ACCOUNT)
    assert [h.address for h in inv.hosts] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert [h.name for h in inv.select("hybrid")] == ["ns1.ip-1.eu", "ns3.ip-3.eu"]
    with pytest.raises(InventoryError, match="no dedicated server"):
        from_provider(FakeServers({}))


def test_a_service_the_account_lacks_names_the_host(inventory: Inventory) -> None:
    account = {name: value for name, value in ACCOUNT.items() if name != "ns2.ip-2.eu"}
    with pytest.raises(InventoryError) as info:
        enrich(inventory, FakeServers(account))
    err = info.value
    assert "fleet.ovh_service 'ns2.ip-2.eu' of host 'stor-2' is not a server" in str(err)
    assert err.path == inventory.require("stor-2").source
    assert isinstance(err.__cause__, ProviderNotFound)


def test_provider_failures_propagate_unchanged(inventory: Inventory) -> None:
    failure = ProviderTransient("HTTP 503", status=503)
    with pytest.raises(ProviderTransient) as info:
        enrich(inventory, FakeServers(ACCOUNT, fail=failure))
    assert info.value is failure


def test_an_unlisted_server_named_like_a_host_without_service(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("all:\n  hosts:\n    ns3.ip-3.eu: {ansible_host: 10.0.0.3}\n", encoding="utf-8")
    with pytest.raises(InventoryError, match=r"an OVH server but no fleet\.ovh_service") as info:
        enrich(load_inventory([path]), FakeServers(ACCOUNT), include_unlisted=True)
    assert info.value.hint == "add `fleet: {ovh_service: ns3.ip-3.eu}` to it"


def test_servers_are_fetched_concurrently() -> None:
    # Every server() call waits until three callers are in at once: a serial loop would break
    # the barrier (BrokenBarrierError) instead of finishing.
    barrier = threading.Barrier(3, timeout=30)
    inv = from_provider(FakeServers(ACCOUNT, barrier=barrier), max_workers=3)
    assert len(inv.hosts) == 3
