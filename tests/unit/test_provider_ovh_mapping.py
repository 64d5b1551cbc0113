"""OVH models to fleet values, rescue/disk boot choice, retry waits, client construction."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import ovh.client
import pytest

from fleet.errors import ConfigError, ProviderError
from fleet.provider.base import Boot
from fleet.provider.ovh_client import build_client
from fleet.provider.ovh_records import (
    choose_disk_boot,
    choose_rescue_boot,
    date_from,
    hardware_from,
    install_status_from,
    server_from,
    size_in_gb,
    task_from,
)
from fleet.provider.ratelimit import RetryPolicy


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ({"unit": "GB", "value": 1920}, 1920),
        ({"unit": "TB", "value": 4}, 4000),
        ({"unit": "TB", "value": 1.92}, 1920),
        ({"unit": "MB", "value": 480000}, 480),
        ({"unit": "gb", "value": 480}, 480),
        ({"unit": "GiB", "value": 1}, 1),
        ({"unit": "TiB", "value": 1}, 1100),
    ],
)
def test_size_in_gb(size: dict[str, object], expected: int) -> None:
    assert size_in_gb(size) == expected


@pytest.mark.parametrize(
    "size", [None, {"unit": "GB"}, {"unit": "XB", "value": 3}, {"value": "12", "unit": "GB"}]
)
def test_unreadable_size_is_a_provider_error(size: object) -> None:
    with pytest.raises(ProviderError, match="ns1: "):
        size_in_gb(size, server="ns1")


SCALE_7 = {
    "bootMode": "uefi",
    "description": "SCALE-7",
    "defaultDiskGroupId": 1,
    "memorySize": {"unit": "MB", "value": 524288},
    "someFutureField": {"nested": True},
    "diskGroups": [
        {
            "diskGroupId": 1,
            "diskType": "NVME",
            "numberOfDisks": 2,
            "diskSize": {"unit": "GB", "value": 1920},
            "description": "2 X Disk NVME 1920 GB, JBOD",
            "raidController": None,
            "defaultHardwareRaidType": None,
            "defaultHardwareRaidSize": None,
        },
        {
            "diskGroupId": 2,
            "diskType": "HDD",
            "numberOfDisks": 4,
            "diskSize": {"unit": "TB", "value": 14},
            "description": "4 X Disk SATA 14 TB, JBOD",
        },
    ],
}


def test_hardware_maps_disk_groups_and_ignores_unknown_fields() -> None:
    hardware = hardware_from("ns1", SCALE_7)
    assert hardware.description == "SCALE-7"
    assert hardware.boot_mode == "uefi"
    assert [(g.id, g.disk_type, g.count, g.size_gb) for g in hardware.disk_groups] == [
        (1, "NVME", 2, 1920),
        (2, "HDD", 4, 14000),
    ]
    assert hardware.disk_groups[1].description == "4 X Disk SATA 14 TB, JBOD"


def test_hardware_tolerates_missing_optional_fields() -> None:
    hardware = hardware_from(
        "ns1",
        {
            "diskGroups": [
                {"diskSize": {"unit": "GB", "value": 480}},
                {"diskSize": {"unit": "GB", "value": 1}},
            ]
        },
    )
    assert hardware.description == ""
    assert hardware.boot_mode is None
    assert [(g.id, g.disk_type, g.count) for g in hardware.disk_groups] == [(1, "", 0), (2, "", 0)]
    assert hardware_from("ns1", {"diskGroups": None}).disk_groups == ()


def test_server_maps_dedicated_model() -> None:
    server = server_from(
        "ns1",
        {
            "name": "ns1",
            "ip": "192.0.2.10",
            "datacenter": "gra3",
            "rack": "G123A45",
            "state": "ok",
            "bootId": 1,
            "rescueSshKey": None,
            "os": "debian12_64",
            "powerState": "poweron",
            "reverse": "ns1.example.net.",
            "iam": {"id": "x", "urn": "urn:v1:eu:resource:dedicatedServer:ns1"},
            "newField": 3,
        },
    )
    assert (server.ip, server.datacenter, server.rack, server.boot_id) == (
        "192.0.2.10",
        "gra3",
        "G123A45",
        1,
    )
    assert (server.os, server.power_state, server.reverse) == (
        "debian12_64",
        "poweron",
        "ns1.example.net.",
    )
    assert server.rescue_ssh_key is None


def test_task_from_full_and_short_replies() -> None:
    full = task_from(
        {
            "taskId": 42,
            "function": "hardReboot",
            "status": "doing",
            "comment": None,
            "startDate": "2024-02-29T12:00:00+01:00",
            "doneDate": None,
            "lastUpdate": "x",
        },
        query_id="Q1",
    )
    assert (full.id, full.function, full.status, full.query_id) == (42, "hardReboot", "doing", "Q1")
    assert full.pending
    assert full.start_date == datetime(2024, 2, 29, 11, 0, tzinfo=UTC)
    assert full.done_date is None
    short = task_from(
        {
            "taskId": 7,
            "function": "reinstallServer",
            "status": "init",
            "comment": "Start bare metal OS installation",
            "startDate": "2024-11-20T15:22:14.449Z",
            "doneDate": None,
        }
    )
    assert short.comment == "Start bare metal OS installation"
    assert short.start_date == datetime(2024, 11, 20, 15, 22, 14, 449000, tzinfo=UTC)
    assert short.start_date.tzinfo is UTC
    with pytest.raises(ProviderError, match="ns1: task without taskId"):
        task_from({"function": "hardReboot"}, server="ns1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-26T17:57:10+01:00", datetime(2024, 1, 26, 16, 57, 10, tzinfo=UTC)),
        ("2024-07-01T02:00:00+02:00", datetime(2024, 7, 1, 0, 0, tzinfo=UTC)),
        ("2024-11-20T15:22:14.449Z", datetime(2024, 11, 20, 15, 22, 14, 449000, tzinfo=UTC)),
        ("2024-02-29T23:59:59-05:00", datetime(2024, 3, 1, 4, 59, 59, tzinfo=UTC)),
        (None, None),
    ],
)
def test_task_dates_are_aware_utc(text: str | None, expected: datetime | None) -> None:
    assert date_from(text) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-01-26T17:57:10", "without a time zone"),  # Paris or UTC? hours apart
        ("yesterday", "unreadable"),
        (1706288230, "unreadable"),
        ("", "unreadable"),
    ],
)
def test_unreadable_task_dates_are_refused_naming_the_field(value: object, reason: str) -> None:
    with pytest.raises(ProviderError, match=f"ns1: startDate .* is {reason}"):
        task_from({"taskId": 1, "status": "done", "startDate": value}, server="ns1")


def test_install_status() -> None:
    status = install_status_from(
        {
            "elapsedTime": 93,
            "progress": [
                {"comment": "Preparing installation", "status": "done", "error": None},
                {"comment": "Partitioning disk", "status": "error", "error": "disk gone"},
            ],
        }
    )
    assert status.elapsed_seconds == 93
    assert [(s.status, s.error) for s in status.steps] == [("done", None), ("error", "disk gone")]
    assert install_status_from({"elapsedTime": 0, "progress": None}).steps == ()


def boot(boot_id: int, kernel: str, boot_type: str = "rescue") -> Boot:
    return Boot(id=boot_id, type=boot_type, kernel=kernel)


@pytest.mark.parametrize(
    ("boots", "expected_id"),
    [
        ([boot(1, "ipxe-shell"), boot(22, "rescue-customer"), boot(35, "rescue12-customer")], 35),
        ([boot(35, "rescue12-customer"), boot(1, "ipxe-shell"), boot(22, "rescue-customer")], 35),
        ([boot(1, "ipxe-shell"), boot(9, "rescue-customer")], 9),
        ([boot(1, "ipxe-shell"), boot(40, "rescue-pro"), boot(41, "rescue15-customer")], 41),
        ([boot(1, "ipxe-shell"), boot(40, "rescue-pro")], None),
        ([], None),
    ],
)
def test_rescue_boot_is_chosen_by_kernel(boots: list[Boot], expected_id: int | None) -> None:
    chosen = choose_rescue_boot(boots)
    assert (chosen.id if chosen else None) == expected_id


def test_disk_boot_prefers_hd_kernel() -> None:
    assert choose_disk_boot([boot(3, "hdx", "harddisk"), boot(1, "hd", "harddisk")]) == boot(
        1, "hd", "harddisk"
    )
    assert choose_disk_boot([boot(5, "other", "harddisk")]) == boot(5, "other", "harddisk")
    assert choose_disk_boot([boot(5, "a", "harddisk"), boot(6, "b", "harddisk")]) is None
    assert choose_disk_boot([]) is None


class _RateLimitedError(Exception):
    retry_after = 45.0


def test_retry_wait_grows_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=8.0, jitter=0.5)
    rng = random.Random(1)
    waits = [policy.wait_for(n, None, rng) for n in range(1, 7)]
    for n, wait in enumerate(waits, start=1):
        base = min(8.0, 2.0 ** (n - 1))
        assert base <= wait <= base + 0.5
    assert policy.wait_for(1, _RateLimitedError(), rng) == 45.0


def test_build_client_registers_the_sandbox_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "OVH_ENDPOINT",
        "OVH_APPLICATION_KEY",
        "OVH_APPLICATION_SECRET",
        "OVH_CONSUMER_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(ovh.client.ENDPOINTS, "unit-sandbox", "http://example.invalid/1.0")
    client = build_client(
        "unit-sandbox",
        endpoint_url="http://127.0.0.1:9/1.0/",
        application_key="ak",
        application_secret="as",
        consumer_key="ck",
    )
    assert client._endpoint == "http://127.0.0.1:9/1.0"
    assert ovh.client.ENDPOINTS["unit-sandbox"] == "http://127.0.0.1:9/1.0"


def test_build_client_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ovh.client.ENDPOINTS, "unit-env", "http://127.0.0.1:9/1.0")
    monkeypatch.setenv("OVH_ENDPOINT", "unit-env")
    monkeypatch.setenv("OVH_APPLICATION_KEY", "env-ak")
    monkeypatch.setenv("OVH_APPLICATION_SECRET", "env-as")
    monkeypatch.setenv("OVH_CONSUMER_KEY", "env-ck")
    client = build_client()
    assert (client._endpoint, client._application_key, client._consumer_key) == (
        "http://127.0.0.1:9/1.0",
        "env-ak",
        "env-ck",
    )


def test_build_client_refuses_to_redirect_python_ovh_endpoints() -> None:
    with pytest.raises(ConfigError, match="ovh-eu is python-ovh's"):
        build_client(
            "ovh-eu",
            endpoint_url="http://127.0.0.1:9/1.0",
            application_key="a",
            application_secret="b",
            consumer_key="c",
        )
    assert ovh.client.ENDPOINTS["ovh-eu"] == "https://eu.api.ovh.com/1.0"


def test_build_client_errors_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVH_APPLICATION_KEY", raising=False)
    with pytest.raises(ConfigError, match="Unknown endpoint"):
        build_client("no-such-endpoint", application_key="a", application_secret="b")
    with pytest.raises(ConfigError, match="unknown OVH client setting"):
        build_client("ovh-eu", application_token="x")
    with pytest.raises(ConfigError, match="both application_key and application_secret"):
        build_client("ovh-eu", application_key="a", application_secret="")
