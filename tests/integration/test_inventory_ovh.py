"""The inventory enriched from the sandbox's fake OVH API, through the real OVH provider.

Real HTTP on 127.0.0.1, requests signed by an unmodified python-ovh client, answers parsed by
``fleet.provider.ovh``: what ``fleet inventory`` does against OVH.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from fleet.errors import InventoryError, ProviderError
from fleet.inventory import enrich, from_provider, load_inventory
from fleet.inventory.importer import render_inventory
from fleet.inventory.ovhcache import OvhCache
from fleet.provider.ovh import OvhProvider, RetryPolicy, build_client
from fleet.sandbox.ovh_api import Credentials, FakeOvhApi, ServerSpec
from fleet.sandbox.ovh_chaos import ChaosRule
from tests.ansible.compare import assert_same_as_ansible

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

ENDPOINT = "fleet-inventory-test"
SN = "ns100{}.ip-127-0-10.eu"
SPECS = [
    ServerSpec(SN.format(1), "127.0.10.1", "gra3", "G102", hybrid=True, hdd_count=4),
    ServerSpec(SN.format(2), "127.0.10.2", "gra3", "G103", hybrid=True, system_disk_type="SSD"),
    ServerSpec(SN.format(3), "127.0.10.3", "rbx8", "R201", hybrid=False),
    ServerSpec(SN.format(4), "127.0.10.4", "sbg5", "S301", hybrid=True, hdd_size_gb=8000),
]


@pytest.fixture
def creds() -> Credentials:
    return Credentials.generate()


@pytest.fixture
def api(creds: Credentials) -> Iterator[FakeOvhApi]:
    fake = FakeOvhApi(SPECS, creds, seed=7)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def provider(api: FakeOvhApi, creds: Credentials) -> OvhProvider:
    client = build_client(
        ENDPOINT,
        endpoint_url=api.url,
        application_key=creds.application_key,
        application_secret=creds.application_secret,
        consumer_key=creds.consumer_key,
        timeout=10.0,
    )
    fast_retries = RetryPolicy(attempts=5, total_seconds=30.0, initial_wait=0.01, max_wait=0.05)
    return OvhProvider(client, rate_limit_per_minute=60_000, burst=100, retry=fast_retries)


def write_inventory(tmp_path: Path) -> Path:
    """The shape the sandbox writes: groups by datacenter, no hand-kept hybrid group."""
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(
            """
            all:
              vars: {ansible_user: fleet, ansible_port: 2222, fleet: {labels: {env: sandbox}}}
              children:
                gra3:
                  vars: {fleet: {datacenter: gra3}}
                  hosts:
                    stor-1: {ansible_host: 127.0.20.1, fleet: {ovh_service: ns1001.ip-127-0-10.eu}}
                    stor-2: {fleet: {ovh_service: ns1002.ip-127-0-10.eu, rack: MY-RACK}}
                web:
                  hosts:
                    web-1: {fleet: {ovh_service: ns1003.ip-127-0-10.eu}}
                    local-1: {ansible_host: 127.0.20.9}
            """
        ),
        encoding="utf-8",
    )
    return path


def test_enrich_merges_the_api_under_the_yaml(tmp_path: Path, provider: OvhProvider) -> None:
    inventory = load_inventory([write_inventory(tmp_path)])
    enriched = enrich(inventory, provider)

    stor1, stor2, web1, local = (
        enriched.require(n) for n in ("stor-1", "stor-2", "web-1", "local-1")
    )
    assert (stor1.address, stor1.datacenter, stor1.rack) == ("127.0.20.1", "gra3", "G102")
    assert (stor2.address, stor2.datacenter, stor2.rack) == ("stor-2", "gra3", "MY-RACK")
    assert (web1.address, web1.datacenter, web1.rack) == ("web-1", "rbx8", "R201")
    assert (stor1.model, local.model) == ("SCALE-a1", None)
    assert (web1.user, web1.port) == ("fleet", 2222)
    assert local.disks is None
    assert stor1.disks is not None and stor1.disks.hybrid and stor1.disks.hdd_count == 4
    assert stor2.disks is not None and (stor2.disks.hybrid, stor2.disks.system_type) == (
        True,
        "SSD",
    )
    assert web1.disks is not None and not web1.disks.hybrid
    enriched.check_addresses()
    assert [h.name for h in enriched.select("hybrid")] == ["stor-1", "stor-2"]
    assert [h.name for h in enriched.select("hw:system=ssd")] == ["stor-2"]
    assert [h.name for h in enriched.select("hw:hdd_count>=4")] == ["stor-1"]
    assert [h.name for h in enriched.select("dc:rbx8")] == ["web-1"]


def test_from_provider_lists_every_server_of_the_account(provider: OvhProvider) -> None:
    inventory = from_provider(provider, max_workers=4)
    assert [h.name for h in inventory.hosts] == [s.name for s in SPECS]
    assert [h.address for h in inventory.hosts] == [s.ip for s in SPECS]
    assert [h.hybrid for h in inventory.hosts] == [s.hybrid for s in SPECS]
    last = inventory.hosts[-1]
    assert last.disks is not None and (last.disks.hdd_count, last.disks.hdd_size_gb) == (2, 8000)
    assert (last.datacenter, last.rack, last.source) == ("sbg5", "S301", "ovh")


def test_unlisted_servers_join_the_yaml_hosts(tmp_path: Path, provider: OvhProvider) -> None:
    inventory = load_inventory([write_inventory(tmp_path)])
    enriched = enrich(inventory, provider, include_unlisted=True)
    assert [h.name for h in enriched.hosts][-1] == "ns1004.ip-127-0-10.eu"
    assert len(enriched.hosts) == 5


def test_enrichment_rides_through_transient_api_errors(
    tmp_path: Path, api: FakeOvhApi, provider: OvhProvider
) -> None:
    api.chaos.add_rule(ChaosRule(kind="500", route="GET /dedicated/server/*", count=3))
    api.chaos.add_rule(ChaosRule(kind="502", route="GET /dedicated/server/*/**", count=2))
    enriched = enrich(load_inventory([write_inventory(tmp_path)]), provider)
    assert enriched.require("stor-2").rack == "MY-RACK"
    assert enriched.require("web-1").rack == "R201"
    assert api.chaos.snapshot()["rules"][0]["fired"] == 3


def test_a_service_missing_from_the_account(tmp_path: Path, provider: OvhProvider) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("all:\n  hosts:\n    ghost: {fleet: {ovh_service: ns9999.ip-127-0-10.eu}}\n")
    with pytest.raises(InventoryError) as info:
        enrich(load_inventory([path]), provider)
    assert "ovh_service 'ns9999.ip-127-0-10.eu' of host 'ghost' is not a server" in str(info.value)
    assert info.value.path == f"{path}:3"


def test_cached_data_is_reused_with_its_age_until_too_old(
    tmp_path: Path, api: FakeOvhApi, provider: OvhProvider
) -> None:
    inventory = load_inventory([write_inventory(tmp_path)])
    path = tmp_path / "state" / "ovh-cache-test.json"
    now = [1_000_000.0]
    first = OvhCache(path, lambda: provider, max_age=3600, clock=lambda: now[0])
    fresh = enrich(inventory, first)
    first.save()
    assert (first.fetched, first.reused) == (6, 0)  # server + hardware of three services
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    api.stop()  # from now on, only the file can answer
    now[0] += 1800
    again = OvhCache(path, lambda: provider, max_age=3600, clock=lambda: now[0])
    cached = enrich(inventory, again)
    assert cached == fresh
    assert (again.fetched, again.reused) == (0, 6)
    assert "OVH data: 6 answers from the cache, up to 30 min old (" in again.describe()

    now[0] += 3600  # too old: asked again, and the API is gone
    stale = OvhCache(path, lambda: provider, max_age=3600, clock=lambda: now[0])
    with pytest.raises(ProviderError):
        enrich(inventory, stale)


def test_import_writes_an_inventory_that_fleet_and_ansible_read_alike(
    tmp_path: Path, provider: OvhProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = render_inventory(from_provider(provider).hosts, datetime(2026, 3, 1, tzinfo=UTC))
    path = tmp_path / "ovh.yaml"
    path.write_text(text, encoding="utf-8")
    assert "# SCALE-a1: 2x960GB NVME + 4x4000GB HDD, hybrid" in text
    monkeypatch.chdir(tmp_path)
    imported = assert_same_as_ansible([path], tmp_path)
    assert [h.name for h in imported.hosts] == [s.name for s in SPECS]
    first = imported.require(SPECS[0].name)
    assert (first.address, first.service_name, first.datacenter, first.rack) == (
        "127.0.10.1", SPECS[0].name, "gra3", "G102",
    )  # fmt: skip
    assert first.groups == ("gra3",)
    enriched = enrich(imported, provider)
    assert [h.name for h in enriched.select("hw:hybrid")] == [s.name for s in SPECS if s.hybrid]
