"""The sandbox's fake OVH API over real HTTP, driven by the real, unmodified ``ovh.Client``.

The client reaches the fake through a named endpoint registered in ``ovh.client.ENDPOINTS``;
malformed requests go through ``requests`` directly, signed by hand where they must be.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import ovh
import ovh.client
import ovh.exceptions
import pytest
import requests

from fleet.sandbox.ovh_api import Credentials, FakeOvhApi, PowerEvent, ServerSpec, TaskTimings
from fleet.sandbox.ovh_chaos import ChaosConfigError, ChaosRule, Early404, TaskFailure

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.integration

TOKEN = "sandbox-control-token"
FAST = TaskTimings.fast()
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "ovh" / "dedicated-server-schema.json"
T = TypeVar("T")


def make_specs(count: int) -> list[ServerSpec]:
    """Servers in two datacenters; even ones hybrid, every third non-hybrid one on SSD."""
    return [
        ServerSpec(
            name=f"ns{5000 + i}.ip-10-1-{i // 250}.eu",
            ip=f"10.1.{i // 250}.{i % 250 + 1}",
            datacenter="gra3" if i % 2 else "rbx8",
            rack=f"R{i % 7}",
            hybrid=i % 2 == 0,
            system_disk_type="SSD" if i % 6 == 3 else "NVME",
            reverse=f"host{i}.example.net",
        )
        for i in range(count)
    ]


@dataclass
class Sandbox:
    api: FakeOvhApi
    creds: Credentials
    endpoint: str
    names: list[str]
    events: list[tuple[str, PowerEvent]] = field(default_factory=list)

    def client(self, **overrides: str) -> Any:
        keys = {
            "application_key": self.creds.application_key,
            "application_secret": self.creds.application_secret,
            "consumer_key": self.creds.consumer_key,
            **overrides,
        }
        return ovh.Client(endpoint=self.endpoint, **keys)

    def events_of(self, name: str) -> list[PowerEvent]:
        return [event for server, event in list(self.events) if server == name]

    def wait_events(self, name: str, count: int) -> list[PowerEvent]:
        """The server's power events once there are ``count`` of them."""
        wait_for(f"{count} power events of {name}", lambda: len(self.events_of(name)) >= count)
        return self.events_of(name)


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start fake APIs registered as named python-ovh endpoints; stop them all afterwards."""
    started: list[tuple[FakeOvhApi, str]] = []

    def start(count: int = 8, **kwargs: Any) -> Sandbox:
        creds = Credentials.generate(random.Random(len(started)))
        specs = make_specs(count)
        kwargs.setdefault("timings", FAST)
        kwargs.setdefault("control_token", TOKEN)
        kwargs.setdefault("seed", 1234)
        events: list[tuple[str, PowerEvent]] = []
        kwargs.setdefault("on_power", lambda name, event: events.append((name, event)))
        api = FakeOvhApi(specs, creds, **kwargs)
        endpoint = f"fleet-sandbox-{uuid.uuid4().hex[:8]}"
        started.append((api, endpoint))
        ovh.client.ENDPOINTS[endpoint] = api.start()
        return Sandbox(api, creds, endpoint, [s.name for s in specs], events)

    try:
        yield start
    finally:
        for api, endpoint in started:
            ovh.client.ENDPOINTS.pop(endpoint, None)
            api.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox()


def wait_for(what: str, probe: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``probe`` until it returns a truthy value (bounded in time and count)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def wait_task(client: Any, name: str, task_id: int, statuses: set[str] | None = None) -> Any:
    """Poll a task until it ends; the statuses seen on the way are added to ``statuses``."""
    seen = statuses if statuses is not None else set()

    def probe() -> Any:
        task = client.get(f"/dedicated/server/{name}/task/{task_id}")
        seen.add(task["status"])
        return task if task["status"] not in ("init", "todo", "doing") else None

    return wait_for(f"task {task_id} of {name}", probe)


def boots_by_kernel(client: Any, name: str) -> dict[str, dict[str, Any]]:
    ids = client.get(f"/dedicated/server/{name}/boot")
    boots = [client.get(f"/dedicated/server/{name}/boot/{boot_id}") for boot_id in ids]
    return {boot["kernel"]: boot for boot in boots}


def raw(
    sb: Sandbox,
    method: str,
    path: str,
    body: str = "",
    *,
    sign: bool = True,
    secret: str | None = None,
    consumer: str | None = None,
    timestamp: int | None = None,
    signed_path: str | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """A request written by hand, signed as OVH specifies (optionally over another path)."""
    url = sb.api.url + path
    sent = {"X-Ovh-Application": sb.creds.application_key, **(headers or {})}
    if body:
        sent["Content-Type"] = "application/json"
    if sign:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        key = consumer or sb.creds.consumer_key
        signed_url = sb.api.url + (signed_path or path)
        parts = [secret or sb.creds.application_secret, key, method, signed_url, body, stamp]
        digest = hashlib.sha1("+".join(parts).encode()).hexdigest()
        sent.update(
            {"X-Ovh-Consumer": key, "X-Ovh-Timestamp": stamp, "X-Ovh-Signature": "$1$" + digest}
        )
    return requests.request(method, url, data=body.encode(), headers=sent, timeout=10)


def control(
    sb: Sandbox, method: str, path: str, data: Any = None, token: str | None = TOKEN
) -> requests.Response:
    headers = {} if token is None else {"X-Sandbox-Token": token}
    url = sb.api.url.removesuffix("/1.0") + "/_sandbox" + path
    body = None if data is None else json.dumps(data)
    return requests.request(method, url, data=body, headers=headers, timeout=10)


# -- authentication ------------------------------------------------------------------------------


def test_auth_time_is_unauthenticated_and_every_answer_has_a_query_id(sandbox: Sandbox) -> None:
    answer = requests.get(sandbox.api.url + "/auth/time", timeout=10)
    assert answer.status_code == 200
    assert isinstance(answer.json(), int)
    assert abs(answer.json() - time.time()) < 300
    assert answer.headers["X-Ovh-QueryId"].startswith("EU.ext-")
    refused = requests.get(sandbox.api.url + "/dedicated/server", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["X-Ovh-QueryId"].startswith("EU.ext-")
    assert refused.headers["X-Ovh-QueryId"] != answer.headers["X-Ovh-QueryId"]


def test_signed_client_lists_the_servers(sandbox: Sandbox) -> None:
    assert sandbox.client().get("/dedicated/server") == sandbox.names


def test_wrong_secret_is_an_invalid_signature(sandbox: Sandbox) -> None:
    client = sandbox.client(application_secret="s" * 32)
    with pytest.raises(ovh.exceptions.BadParametersError, match="Invalid signature") as err:
        client.get("/dedicated/server")
    assert err.value.query_id.startswith("EU.ext-")
    answer = raw(sandbox, "GET", "/dedicated/server", secret="s" * 32)
    assert (answer.status_code, answer.json()["errorCode"]) == (400, "INVALID_SIGNATURE")


def test_unknown_consumer_key_is_an_invalid_credential(sandbox: Sandbox) -> None:
    with pytest.raises(ovh.exceptions.InvalidCredential):
        sandbox.client(consumer_key="c" * 32).get("/dedicated/server")
    answer = raw(sandbox, "GET", "/dedicated/server", consumer="c" * 32)
    assert answer.status_code == 403
    assert answer.json() == {
        "errorCode": "INVALID_CREDENTIAL",
        "httpCode": "403 Forbidden",
        "message": "This credential does not exist",
    }


def test_consumer_key_of_another_application_is_refused(sandbox: Sandbox) -> None:
    other = Credentials.generate(random.Random(99))
    sandbox.api.add_credentials(other)
    assert sandbox.client(**_keys(other)).get("/dedicated/server") == sandbox.names
    mixed = sandbox.client(consumer_key=other.consumer_key)
    with pytest.raises(ovh.exceptions.InvalidCredential):
        mixed.get("/dedicated/server")


def _keys(creds: Credentials) -> dict[str, str]:
    return {
        "application_key": creds.application_key,
        "application_secret": creds.application_secret,
        "consumer_key": creds.consumer_key,
    }


def test_unknown_application_key_is_an_invalid_key(sandbox: Sandbox) -> None:
    with pytest.raises(ovh.exceptions.InvalidKey):
        sandbox.client(application_key="a" * 16).get("/dedicated/server")


def test_missing_headers_ask_to_login(sandbox: Sandbox) -> None:
    answer = raw(sandbox, "GET", "/dedicated/server", sign=False)
    assert (answer.status_code, answer.json()) == (401, {"message": "You must login first"})
    with pytest.raises(ovh.exceptions.APIError, match="You must login first"):
        sandbox.client().get("/dedicated/server", _need_auth=False)


def test_timestamp_far_from_server_time_is_refused(sandbox: Sandbox) -> None:
    stale = raw(sandbox, "GET", "/dedicated/server", timestamp=int(time.time()) - 3600)
    assert (stale.status_code, stale.json()["errorCode"]) == (400, "QUERY_TIME_OUT")
    fresh = raw(sandbox, "GET", "/dedicated/server")
    assert (fresh.status_code, fresh.json()) == (200, sandbox.names)


def test_signature_covers_the_query_string_and_the_body(sandbox: Sandbox) -> None:
    name = sandbox.names[0]
    path = f"/dedicated/server/{name}/boot?bootType=rescue"
    assert raw(sandbox, "GET", path).status_code == 200
    swapped = raw(sandbox, "GET", path, signed_path=path.replace("rescue", "harddisk"))
    assert swapped.json()["errorCode"] == "INVALID_SIGNATURE"
    body = json.dumps({"monitoring": False})
    assert raw(sandbox, "PUT", f"/dedicated/server/{name}", body).status_code == 200
    tampered = raw(sandbox, "PUT", f"/dedicated/server/{name}", body, signed_path="/other")
    assert tampered.status_code == 400


# -- servers, PUT, boots -----------------------------------------------------------------------


def test_server_answer_describes_the_server(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[1]
    server = client.get(f"/dedicated/server/{name}")
    assert (server["name"], server["ip"], server["datacenter"]) == (name, "10.1.0.2", "gra3")
    assert (server["rack"], server["reverse"], server["os"]) == (
        "R1",
        "host1.example.net",
        "debian12_64",
    )
    assert server["powerState"] == "poweron"
    assert server["iam"]["urn"].endswith(name)
    assert boots_by_kernel(client, name)["hd"]["bootId"] == server["bootId"]
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get("/dedicated/server/ns404.example")


def test_put_writable_keys_answers_null_and_changes_them(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    result = client.put(
        f"/dedicated/server/{name}",
        rescueSshKey="ssh-ed25519 AAAAkey",
        monitoring=False,
        rescueMail=None,
        state="ok",
    )
    assert result is None
    server = client.get(f"/dedicated/server/{name}")
    assert (server["rescueSshKey"], server["monitoring"]) == ("ssh-ed25519 AAAAkey", False)


@pytest.mark.parametrize(
    "change",
    [
        {"ip": "10.9.9.9"},
        {"os": "ubuntu2404-server_64"},
        {"powerState": "poweroff"},
        {"name": "renamed"},
        {"bootType": "rescue"},
        {"rescueSshKey": "ssh-ed25519 K", "datacenter": "sbg5"},
        {"monitoring": "yes"},
        {"state": "sleeping"},
        {"bootId": "12"},
    ],
)
def test_put_refuses_read_only_unknown_and_mistyped_keys_atomically(
    sandbox: Sandbox, change: dict[str, Any]
) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    before = client.get(f"/dedicated/server/{name}")
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.put(f"/dedicated/server/{name}", **change)
    assert client.get(f"/dedicated/server/{name}") == before


def test_put_boot_id_must_be_one_of_the_servers_boots(sandbox: Sandbox) -> None:
    client = sandbox.client()
    first, second = sandbox.names[:2]
    foreign = boots_by_kernel(client, second)["rescue12-customer"]["bootId"]
    own = boots_by_kernel(client, first)["rescue12-customer"]["bootId"]
    assert foreign != own
    with pytest.raises(ovh.exceptions.BadParametersError, match="not available"):
        client.put(f"/dedicated/server/{first}", bootId=foreign)
    client.put(f"/dedicated/server/{first}", bootId=own)
    assert client.get(f"/dedicated/server/{first}")["bootId"] == own


def test_boots_differ_per_server_and_the_customer_rescue_is_not_first(sandbox: Sandbox) -> None:
    client = sandbox.client()
    seen_ids: list[tuple[int, ...]] = []
    for name in sandbox.names[:4]:
        boots = boots_by_kernel(client, name)
        kernels = {k: (b["bootType"], b["bootId"]) for k, b in boots.items()}
        assert {k: t for k, (t, _) in kernels.items()} == {
            "hd": "harddisk",
            "ipxe-shell": "rescue",
            "rescue-customer": "rescue",
            "rescue12-customer": "rescue",
            "poweroff": "power",
        }
        rescue = client.get(f"/dedicated/server/{name}/boot", bootType="rescue")
        assert sorted(rescue) == sorted(
            b["bootId"] for b in boots.values() if b["bootType"] == "rescue"
        )
        assert client.get(f"/dedicated/server/{name}/boot/{rescue[0]}")["kernel"] == "ipxe-shell"
        assert client.get(f"/dedicated/server/{name}/boot", bootType="power") == [
            kernels["poweroff"][1]
        ]
        seen_ids.append(tuple(sorted(b for _, b in kernels.values())))
    assert len(set(seen_ids)) == len(seen_ids)
    assert len({ids[0] for ids in seen_ids}) > 1  # not the same harddisk id everywhere


def test_boot_lookups_refuse_bad_types_and_unknown_ids(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get(f"/dedicated/server/{name}/boot", bootType="floppy")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/dedicated/server/{name}/boot/1")
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get(f"/dedicated/server/{name}/boot/abc")


# -- reboots, tasks, power -----------------------------------------------------------------------


def set_boot(client: Any, name: str, kernel: str, **extra: Any) -> int:
    boot_id = int(boots_by_kernel(client, name)[kernel]["bootId"])
    client.put(f"/dedicated/server/{name}", bootId=boot_id, **extra)
    return boot_id


def test_reboot_runs_the_task_state_machine_and_lands_in_rescue(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    set_boot(client, name, "rescue12-customer", rescueSshKey="ssh-ed25519 RESCUE")
    task = client.post(f"/dedicated/server/{name}/reboot")
    assert (task["function"], task["status"], task["doneDate"]) == ("hardReboot", "init", None)
    seen: set[str] = set()
    done = wait_task(client, name, task["taskId"], seen)
    assert done["status"] == "done"
    assert done["doneDate"] is not None
    assert seen <= {"init", "todo", "doing", "done"}
    assert sandbox.api.server_mode(name) == "rescue"
    events = sandbox.wait_events(name, 2)
    assert events == [
        PowerEvent("off", "disk", None),
        PowerEvent("on", "rescue", "ssh-ed25519 RESCUE"),
    ]
    set_boot(client, name, "hd")
    wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
    events = sandbox.wait_events(name, 4)
    assert events[2:] == [
        PowerEvent("off", "rescue", "ssh-ed25519 RESCUE"),
        PowerEvent("on", "disk", None),
    ]


def test_status_passes_through_the_intermediate_states(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    slow = TaskTimings(0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.01)
    sb = start_sandbox(timings=slow)
    client = sb.client()
    seen: set[str] = set()
    wait_task(
        client, sb.names[0], client.post(f"/dedicated/server/{sb.names[0]}/reboot")["taskId"], seen
    )
    assert seen == {"init", "todo", "doing", "done"}


def test_a_put_alone_changes_nothing(sandbox: Sandbox) -> None:
    client = sandbox.client()
    idle, busy = sandbox.names[:2]
    set_boot(client, idle, "rescue12-customer")
    wait_task(client, busy, client.post(f"/dedicated/server/{busy}/reboot")["taskId"])
    wait_for("the busy server's events", lambda: len(sandbox.events_of(busy)) == 2)
    assert sandbox.api.server_mode(idle) == "disk"
    assert sandbox.events_of(idle) == []
    assert client.get(f"/dedicated/server/{idle}/task") == []


def test_a_reboot_applies_the_boot_id_set_before_it(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    set_boot(client, name, "rescue-customer", rescueSshKey="ssh-ed25519 BEFORE")
    task = client.post(f"/dedicated/server/{name}/reboot")
    set_boot(client, name, "hd", rescueSshKey="ssh-ed25519 AFTER")
    wait_task(client, name, task["taskId"])
    assert sandbox.api.server_mode(name) == "rescue"
    on = sandbox.wait_events(name, 2)[1:]
    assert on == [PowerEvent("on", "rescue", "ssh-ed25519 BEFORE")]
    wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
    assert sandbox.api.server_mode(name) == "disk"


def test_ipxe_and_poweroff_boots_serve_no_ssh(sandbox: Sandbox) -> None:
    client = sandbox.client()
    ipxe, off = sandbox.names[:2]
    set_boot(client, ipxe, "ipxe-shell")
    set_boot(client, off, "poweroff")
    wait_task(client, ipxe, client.post(f"/dedicated/server/{ipxe}/reboot")["taskId"])
    wait_task(client, off, client.post(f"/dedicated/server/{off}/reboot")["taskId"])
    assert sandbox.api.server_mode(ipxe) == "ipxe"
    assert client.get(f"/dedicated/server/{ipxe}")["powerState"] == "poweron"
    assert sandbox.api.server_mode(off) == "off"
    assert client.get(f"/dedicated/server/{off}")["powerState"] == "poweroff"
    sandbox.api.tick()
    assert [e.kind for e in sandbox.events_of(ipxe)] == ["off"]
    assert [e.kind for e in sandbox.events_of(off)] == ["off"]


def test_a_second_reboot_or_a_reinstall_conflicts_while_one_runs(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    sandbox.api.set_timings(TaskTimings(reboot_init=30.0, tick=0.01))
    first = client.post(f"/dedicated/server/{name}/reboot")
    with pytest.raises(ovh.exceptions.ResourceConflictError, match=str(first["taskId"])):
        client.post(f"/dedicated/server/{name}/reboot")
    with pytest.raises(ovh.exceptions.ResourceConflictError):
        client.post(f"/dedicated/server/{name}/reinstall", operatingSystem="debian12_64")
    other = sandbox.names[1]
    assert client.post(f"/dedicated/server/{other}/reboot")["status"] == "init"
    client.post(f"/dedicated/server/{name}/task/{first['taskId']}/cancel")
    sandbox.api.set_timings(FAST)
    wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])


def test_cancel_only_before_the_task_is_being_done(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    set_boot(client, name, "rescue12-customer")
    sandbox.api.set_timings(TaskTimings(reboot_init=30.0, tick=0.01))
    task = client.post(f"/dedicated/server/{name}/reboot")
    assert client.post(f"/dedicated/server/{name}/task/{task['taskId']}/cancel") is None
    cancelled = client.get(f"/dedicated/server/{name}/task/{task['taskId']}")
    assert (cancelled["status"], cancelled["doneDate"] is not None) == ("cancelled", True)
    with pytest.raises(ovh.exceptions.ResourceConflictError):
        client.post(f"/dedicated/server/{name}/task/{task['taskId']}/cancel")
    sandbox.api.set_timings(FAST)
    done = wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
    with pytest.raises(ovh.exceptions.ResourceConflictError):
        client.post(f"/dedicated/server/{name}/task/{done['taskId']}/cancel")
    assert [e.mode for e in sandbox.events_of(name)] == ["disk", "rescue"]
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.post(f"/dedicated/server/{name}/task/1/cancel")


def test_task_list_filters_by_function_and_status(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    first = wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
    sandbox.api.set_timings(TaskTimings(reboot_init=30.0, tick=0.01))
    second = client.post(f"/dedicated/server/{name}/reboot")
    path = f"/dedicated/server/{name}/task"
    assert client.get(path) == [first["taskId"], second["taskId"]]
    assert client.get(path, status="done") == [first["taskId"]]
    assert client.get(path, function="hardReboot", status="init") == [second["taskId"]]
    assert client.get(path, function="reinstallServer") == []
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get(path, status="finished")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/dedicated/server/{sandbox.names[1]}/task/{first['taskId']}")


def test_a_failing_power_hook_is_logged_and_the_ticker_goes_on(
    start_sandbox: Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, str]] = []

    def hook(name: str, event: PowerEvent) -> None:
        calls.append((name, event.kind))
        raise RuntimeError("sshd would not restart")

    sb = start_sandbox(on_power=hook)
    client = sb.client()
    with caplog.at_level(logging.ERROR, logger="fleet.sandbox.ovh_api"):
        for name in sb.names[:2]:
            wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
        wait_for("hook calls", lambda: len(calls) == 4)
    assert calls == [
        (sb.names[0], "off"),
        (sb.names[0], "on"),
        (sb.names[1], "off"),
        (sb.names[1], "on"),
    ]
    assert "power hook failed" in caplog.text


# -- hardware, templates, reinstall --------------------------------------------------------------


def test_hardware_of_hybrid_and_plain_servers(sandbox: Sandbox) -> None:
    client = sandbox.client()
    hybrid = client.get(f"/dedicated/server/{sandbox.names[0]}/specifications/hardware")
    groups = [
        (g["diskGroupId"], g["diskType"], g["numberOfDisks"], g["diskSize"])
        for g in hybrid["diskGroups"]
    ]
    assert groups == [
        (1, "NVME", 2, {"unit": "GB", "value": 960}),
        (2, "HDD", 2, {"unit": "GB", "value": 4000}),
    ]
    assert hybrid["defaultDiskGroupId"] == 1
    plain = client.get(f"/dedicated/server/{sandbox.names[1]}/specifications/hardware")
    assert [g["diskType"] for g in plain["diskGroups"]] == ["NVME"]
    ssd = client.get(f"/dedicated/server/{sandbox.names[3]}/specifications/hardware")
    assert [(g["diskGroupId"], g["diskType"]) for g in ssd["diskGroups"]] == [(1, "SSD")]


def test_compatible_templates_is_an_object(sandbox: Sandbox) -> None:
    templates = sandbox.client().get(
        f"/dedicated/server/{sandbox.names[0]}/install/compatibleTemplates"
    )
    assert set(templates) == {"ovh"}
    assert "debian12_64" in templates["ovh"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, ovh.exceptions.BadParametersError),
        ({"operatingSystem": "win2022core-std_64"}, ovh.exceptions.BadParametersError),
        ({"operatingSystem": "debian12_64", "template": "x"}, ovh.exceptions.BadParametersError),
        (
            {"operatingSystem": "debian12_64", "customizations": {"hostName": "x"}},
            ovh.exceptions.BadParametersError,
        ),
        (
            {"operatingSystem": "debian12_64", "customizations": {"language": "xx-yy"}},
            ovh.exceptions.BadParametersError,
        ),
        (
            {"operatingSystem": "debian12_64", "storage": [{"diskGroup": 2}]},
            ovh.exceptions.BadParametersError,
        ),
        (
            {
                "operatingSystem": "debian12_64",
                "storage": [
                    {"partitioning": {"layout": [{"fileSystem": "fat99", "mountPoint": "/"}]}}
                ],
            },
            ovh.exceptions.BadParametersError,
        ),
        (
            {"operatingSystem": "debian12_64", "storage": [{"diskGroupId": 7}]},
            ovh.exceptions.ResourceNotFoundError,
        ),
    ],
)
def test_reinstall_validates_the_body(
    sandbox: Sandbox, body: dict[str, Any], error: type[Exception]
) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    with pytest.raises(error):
        client.post(f"/dedicated/server/{name}/reinstall", **body)
    assert client.get(f"/dedicated/server/{name}/task") == []


def test_ovh_reinstall_examples_are_accepted_when_the_os_is_compatible(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    examples = json.loads((SCHEMA_PATH.parent / "reinstall.request-examples.json").read_text())
    sb = start_sandbox(count=2 * len(examples))
    client = sb.client()
    hybrids = sb.names[::2]
    accepted = 0
    for index, example in enumerate(examples.values()):
        body = example["value"]
        name = hybrids[index]
        compatible = client.get(f"/dedicated/server/{name}/install/compatibleTemplates")["ovh"]
        if body["operatingSystem"] not in compatible:
            with pytest.raises(ovh.exceptions.BadParametersError):
                client.post(f"/dedicated/server/{name}/reinstall", **body)
            continue
        task = client.post(f"/dedicated/server/{name}/reinstall", **body)
        assert task["function"] == "reinstallServer"
        accepted += 1
    assert accepted == 5


def test_reinstall_runs_reports_progress_and_boots_the_new_system(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    sb = start_sandbox(timings=TaskTimings(0.02, 0.02, 0.06, 0.15, 0.15, 0.6, 0.01))
    client = sb.client()
    name = sb.names[0]
    status_path = f"/dedicated/server/{name}/install/status"
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(status_path)
    set_boot(client, name, "rescue12-customer", rescueSshKey="ssh-ed25519 RESCUE")
    wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
    reply = client.post(
        f"/dedicated/server/{name}/reinstall",
        operatingSystem="debian13_64",
        customizations={"hostname": "fresh", "sshKey": "ssh-ed25519 INSTALLED"},
    )
    assert set(reply) == {"taskId", "function", "status", "comment", "startDate", "doneDate"}
    assert (reply["function"], reply["status"], reply["doneDate"]) == (
        "reinstallServer",
        "init",
        None,
    )
    assert reply["comment"] == "Start bare metal OS installation"
    progress = _watch_install(client, status_path)
    assert {"todo", "doing", "done"} <= progress
    done = wait_task(client, name, reply["taskId"])
    assert done["status"] == "done"
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(status_path)
    server = client.get(f"/dedicated/server/{name}")
    assert server["os"] == "debian13_64"
    assert server["bootId"] == boots_by_kernel(client, name)["hd"]["bootId"]
    assert server["rescueSshKey"] == "ssh-ed25519 RESCUE"
    events = sb.wait_events(name, 4)
    assert events[2:] == [
        PowerEvent("off", "rescue", "ssh-ed25519 RESCUE"),
        PowerEvent("on", "disk", None, reinstalled=True, installed_ssh_key="ssh-ed25519 INSTALLED"),
    ]
    assert sb.api.snapshot(name).installs == 1


def _watch_install(client: Any, path: str) -> set[str]:
    """Poll install/status until it ends (404); every step status seen."""
    seen: set[str] = set()
    elapsed: list[int] = []
    for _ in range(500):
        try:
            status = client.get(path)
        except ovh.exceptions.ResourceNotFoundError:
            break
        elapsed.append(status["elapsedTime"])
        seen.update(step["status"] for step in status["progress"])
        assert all(step["error"] is None for step in status["progress"])
        time.sleep(0.01)
    assert elapsed == sorted(elapsed)
    return seen


# -- chaos ---------------------------------------------------------------------------------------


def test_chaos_500_by_count_on_one_route(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    sandbox.api.chaos.add_rule(ChaosRule(kind="500", route="GET /dedicated/server/*", count=2))
    for _ in range(2):
        with pytest.raises(ovh.exceptions.APIError) as err:
            client.get(f"/dedicated/server/{name}")
        assert err.value.response.status_code == 500
        assert err.value.response.json()["class"] == "Server::InternalServerError"
    assert client.get("/dedicated/server") == sandbox.names  # another route
    assert client.get(f"/dedicated/server/{name}")["name"] == name


def test_chaos_502_is_an_html_page(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.api.chaos.add_rule(ChaosRule(kind="502", route="*", count=2))
    with pytest.raises(ovh.exceptions.InvalidResponse):
        client.get("/dedicated/server")
    answer = raw(sandbox, "GET", "/dedicated/server")
    assert answer.status_code == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in answer.text
    assert client.get("/dedicated/server") == sandbox.names


def test_chaos_429_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.api.chaos.add_rule(
        ChaosRule(kind="429", route="GET /dedicated/server", count=1, retry_after=7)
    )
    answer = raw(sandbox, "GET", "/dedicated/server")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "7")
    assert raw(sandbox, "GET", "/dedicated/server").status_code == 200


def test_chaos_latency_delays_only_matching_routes(start_sandbox: Callable[..., Sandbox]) -> None:
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        time.sleep(seconds)

    sb = start_sandbox(sleep=sleep)
    client = sb.client()
    sb.api.chaos.add_rule(
        ChaosRule(kind="latency", route="GET /dedicated/server/*/boot", seconds=0.05)
    )
    client.get(f"/dedicated/server/{sb.names[0]}")
    assert delays == []
    assert len(client.get(f"/dedicated/server/{sb.names[0]}/boot")) == 5
    assert delays == [0.05]


def test_chaos_probability_is_seeded(start_sandbox: Callable[..., Sandbox]) -> None:
    outcomes = []
    for _ in range(2):
        sb = start_sandbox(seed=77)
        sb.api.chaos.add_rule(ChaosRule(kind="500", route="GET /dedicated/server", probability=0.5))
        outcomes.append([raw(sb, "GET", "/dedicated/server").status_code for _ in range(30)])
    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0].count(500) < 30


def test_chaos_early_404_on_new_tasks(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    sandbox.api.chaos.hide_new_tasks(Early404(gets=2, function="hardReboot"))
    task = client.post(f"/dedicated/server/{name}/reboot")
    for _ in range(2):
        with pytest.raises(ovh.exceptions.ResourceNotFoundError):
            client.get(f"/dedicated/server/{name}/task/{task['taskId']}")
    assert wait_task(client, name, task["taskId"])["status"] == "done"


def test_chaos_task_failure_ends_in_ovh_error_without_touching_the_server(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    set_boot(client, name, "rescue12-customer")
    sandbox.api.chaos.fail_tasks(TaskFailure(function="hardReboot", status="ovhError", count=1))
    failed = wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])
    assert failed["status"] == "ovhError"
    assert sandbox.api.server_mode(name) == "disk"
    assert sandbox.events_of(name) == []
    assert (
        wait_task(client, name, client.post(f"/dedicated/server/{name}/reboot")["taskId"])["status"]
        == "done"
    )
    assert sandbox.api.server_mode(name) == "rescue"


def test_chaos_rate_limit_per_consumer_key(sandbox: Sandbox) -> None:
    other = Credentials.generate(random.Random(5))
    sandbox.api.add_credentials(other)
    sandbox.api.chaos.set_rate_limit(5)
    client = sandbox.client()
    for _ in range(5):
        client.get("/dedicated/server")
    answer = raw(sandbox, "GET", "/dedicated/server")
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    with pytest.raises(ovh.exceptions.APIError):
        client.get("/dedicated/server")
    assert sandbox.client(**_keys(other)).get("/dedicated/server") == sandbox.names
    sandbox.api.chaos.set_rate_limit(None)
    assert client.get("/dedicated/server") == sandbox.names


@pytest.mark.parametrize(
    ("shape", "keys"),
    [
        ("class", {"class", "message", "details"}),
        ("legacy", {"errorCode", "httpCode", "message"}),
        ("message", {"message"}),
    ],
)
def test_error_shapes(start_sandbox: Callable[..., Sandbox], shape: str, keys: set[str]) -> None:
    sb = start_sandbox(error_shape=shape)
    with pytest.raises(ovh.exceptions.ResourceNotFoundError, match="does not exist") as err:
        sb.client().get("/dedicated/server/nope")
    assert set(err.value.response.json()) == keys
    client = sb.client()
    sb.api.set_timings(TaskTimings(reboot_init=30.0))
    client.post(f"/dedicated/server/{sb.names[0]}/reboot")
    with pytest.raises(ovh.exceptions.ResourceConflictError) as conflict:
        client.post(f"/dedicated/server/{sb.names[0]}/reboot")
    assert set(conflict.value.response.json()) == keys


# -- the control surface -------------------------------------------------------------------------


def test_control_surface_needs_the_token(sandbox: Sandbox) -> None:
    assert control(sandbox, "GET", "/state", token=None).status_code == 403
    assert control(sandbox, "GET", "/state", token="wrong").status_code == 403
    rule = {"kind": "500", "route": "GET /dedicated/server", "count": 1}
    assert control(sandbox, "POST", "/chaos", {"rules": [rule]}, token=None).status_code == 403
    assert sandbox.client().get("/dedicated/server") == sandbox.names


def test_control_surface_toggles_chaos_and_shows_state(sandbox: Sandbox) -> None:
    client = sandbox.client()
    rules = [{"kind": "500", "route": "GET /dedicated/server", "count": 1}]
    answer = control(sandbox, "POST", "/chaos", {"rules": rules, "error_shape": "legacy"})
    assert answer.status_code == 200
    assert answer.json()["chaos"]["rules"][0]["kind"] == "500"
    with pytest.raises(ovh.exceptions.APIError) as err:
        client.get("/dedicated/server")
    assert err.value.response.json()["errorCode"] == "INTERNAL_SERVER_ERROR"
    state = control(sandbox, "GET", "/state").json()
    assert state["error_shape"] == "legacy"
    assert state["servers"][sandbox.names[0]]["mode"] == "disk"
    assert control(sandbox, "POST", "/chaos", {"rules": [{"kind": "503"}]}).status_code == 400
    assert control(sandbox, "POST", "/chaos", {"bogus": 1}).status_code == 400
    control(sandbox, "POST", "/chaos", {"rate_limit_per_minute": 1})
    reset = control(sandbox, "POST", "/chaos/reset").json()
    assert reset["chaos"] == {
        "rules": [],
        "task_failures": [],
        "early_404": [],
        "rate_limit_per_minute": None,
    }
    assert reset["error_shape"] == "class"
    assert client.get("/dedicated/server") == sandbox.names


def test_control_surface_sets_task_failures_early_404_and_timings(sandbox: Sandbox) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    settings = {
        "task_failures": [{"function": "hardReboot", "status": "customerError", "count": 1}],
        "early_404": [{"gets": 1}],
    }
    assert control(sandbox, "POST", "/chaos", settings).status_code == 200
    assert (
        control(sandbox, "POST", "/timings", {"reboot_doing": 0.02}).json()["timings"][
            "reboot_doing"
        ]
        == 0.02
    )
    assert control(sandbox, "POST", "/timings", {"reboot_soon": 1}).status_code == 400
    task = client.post(f"/dedicated/server/{name}/reboot")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/dedicated/server/{name}/task/{task['taskId']}")
    assert wait_task(client, name, task["taskId"])["status"] == "customerError"


def test_control_surface_is_off_without_a_token(start_sandbox: Callable[..., Sandbox]) -> None:
    sb = start_sandbox(control_token=None)
    assert control(sb, "GET", "/state").status_code == 404


# -- lifecycle and scale -------------------------------------------------------------------------


def test_stop_closes_open_connections(start_sandbox: Callable[..., Sandbox]) -> None:
    sb = start_sandbox()
    client = sb.client()
    assert client.get("/dedicated/server") == sb.names
    sb.api.stop()
    with pytest.raises(ovh.exceptions.HTTPError):
        client.get("/dedicated/server")


def test_only_loopback_addresses(sandbox: Sandbox) -> None:
    api = FakeOvhApi([], sandbox.creds)
    with pytest.raises(ValueError, match="loopback"):
        api.start(host="0.0.0.0")


def test_serves_500_servers_to_50_threads(start_sandbox: Callable[..., Sandbox]) -> None:
    sb = start_sandbox(count=500)
    errors: list[BaseException] = []
    done: list[str] = []

    def worker(index: int) -> None:
        try:
            client = sb.client()
            names = client.get("/dedicated/server")
            name = names[index * 10]
            client.get(f"/dedicated/server/{name}/specifications/hardware")
            rescue = client.get(f"/dedicated/server/{name}/boot", bootType="rescue")
            assert len(rescue) == 3
            task = client.post(f"/dedicated/server/{name}/reboot")
            wait_task(client, name, task["taskId"])
            done.append(name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(set(done)) == 50
    assert len(sb.client().get("/dedicated/server")) == 500


# -- conformance with OVH's published models -----------------------------------------------------

#: Fields OVH serves beyond its published models (its storage guide shows them).
KNOWN_EXTRAS = {("dedicated.server.HardwareSpecifications", "defaultDiskGroupId")}
_TEXT = {"string", "text", "password", "ipv4", "uuid", "datetime", "date"}


class Schema:
    """The models of OVH's classic API description, and a checker of JSON answers."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.models: dict[str, Any] = data["models"]
        self.responses = {
            (op["httpMethod"], api["path"]): op["responseType"]
            for api in data["apis"]
            for op in api["operations"]
        }

    def check(self, value: Any, type_name: str, where: str = "$", complete: bool = False) -> None:
        if type_name.endswith("[]"):
            assert isinstance(value, list), f"{where}: expected a list"
            for index, item in enumerate(value):
                self.check(item, type_name[:-2], f"{where}[{index}]")
        elif type_name.startswith("map[string]"):
            assert isinstance(value, dict), f"{where}: expected a map"
            for key, item in value.items():
                self.check(item, type_name[len("map[string]") :], f"{where}.{key}")
        elif type_name in _TEXT:
            self._check_text(value, type_name, where)
        elif type_name == "long":
            assert isinstance(value, int) and not isinstance(value, bool), f"{where}: not a long"
        elif type_name == "boolean":
            assert isinstance(value, bool), f"{where}: not a boolean"
        elif type_name == "double":
            assert isinstance(value, int | float) and not isinstance(value, bool), where
        elif type_name in ("void", "void[]"):
            assert value is None, f"{where}: expected null"
        else:
            self._check_model(value, type_name, where, complete)

    @staticmethod
    def _check_text(value: Any, type_name: str, where: str) -> None:
        assert isinstance(value, str), f"{where}: expected a {type_name} string"
        if type_name == "datetime":
            from datetime import datetime

            assert datetime.fromisoformat(value).tzinfo is not None, f"{where}: no offset"
        elif type_name == "uuid":
            uuid.UUID(value)
        elif type_name == "ipv4":
            import ipaddress

            ipaddress.IPv4Address(value)

    def _model(self, type_name: str) -> tuple[dict[str, Any], dict[str, str]]:
        if "<" not in type_name:
            return self.models[type_name], {}
        generic, _, argument = type_name.partition("<")
        model = self.models[f"{generic}<T>"]
        return model, {name: argument[:-1] for name in model["generics"]}

    def _check_model(self, value: Any, type_name: str, where: str, complete: bool) -> None:
        model, generics = self._model(type_name)
        if "enum" in model:
            assert value in model["enum"], f"{where}: {value!r} not in {type_name}"
            return
        assert isinstance(value, dict), f"{where}: expected a {type_name} object"
        properties = model["properties"]
        for key, item in value.items():
            if (type_name, key) in KNOWN_EXTRAS:
                continue
            assert key in properties, f"{where}.{key}: not a field of {type_name}"
            prop = properties[key]
            if item is None:
                assert prop["canBeNull"], f"{where}.{key}: null, but {type_name} says it cannot be"
                continue
            self.check(item, generics.get(prop["type"], prop["type"]), f"{where}.{key}")
        if complete:
            assert set(properties) <= set(value), f"{where}: missing {set(properties) - set(value)}"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(json.loads(SCHEMA_PATH.read_text()))


def answer_of(client: Any, schema: Schema, method: str, template: str, path: str, **kw: Any) -> Any:
    """Call a route and check the answer against the model the schema gives for it."""
    value = client.call(method, path, kw or None) if method != "GET" else client.get(path, **kw)
    response_type = schema.responses[(method, template)]
    schema.check(value, response_type, f"{method} {template}", complete=response_type != "void")
    return value


def test_answers_match_the_published_models(sandbox: Sandbox, schema: Schema) -> None:
    client = sandbox.client()
    sn = "/dedicated/server/{serviceName}"
    for name in sandbox.names[:4]:
        base = f"/dedicated/server/{name}"
        answer_of(client, schema, "GET", "/dedicated/server", "/dedicated/server")
        answer_of(client, schema, "GET", sn, base)
        answer_of(
            client,
            schema,
            "GET",
            f"{sn}/specifications/hardware",
            f"{base}/specifications/hardware",
        )
        answer_of(
            client,
            schema,
            "GET",
            f"{sn}/install/compatibleTemplates",
            f"{base}/install/compatibleTemplates",
        )
        for boot_id in answer_of(client, schema, "GET", f"{sn}/boot", f"{base}/boot"):
            answer_of(client, schema, "GET", f"{sn}/boot/{{bootId}}", f"{base}/boot/{boot_id}")
        set_boot(client, name, "rescue12-customer")
        answer_of(client, schema, "PUT", sn, base, rescueSshKey="ssh-ed25519 K")
        task = answer_of(client, schema, "POST", f"{sn}/reboot", f"{base}/reboot")
        wait_task(client, name, task["taskId"])
        ids = answer_of(client, schema, "GET", f"{sn}/task", f"{base}/task")
        for task_id in ids:
            answer_of(client, schema, "GET", f"{sn}/task/{{taskId}}", f"{base}/task/{task_id}")


def test_reinstall_answers_match_the_published_models(
    start_sandbox: Callable[..., Sandbox], schema: Schema
) -> None:
    sb = start_sandbox(timings=TaskTimings(0.02, 0.02, 0.06, 0.02, 0.02, 0.5, 0.01))
    client = sb.client()
    name = sb.names[0]
    sn = "/dedicated/server/{serviceName}"
    base = f"/dedicated/server/{name}"
    reply = answer_of(
        client,
        schema,
        "POST",
        f"{sn}/reinstall",
        f"{base}/reinstall",
        operatingSystem="debian12_64",
    )
    status = wait_for(
        "an install in progress",
        lambda: [
            s for s in client.get(f"{base}/install/status")["progress"] if s["status"] == "doing"
        ],
    )
    assert status
    answer_of(client, schema, "GET", f"{sn}/install/status", f"{base}/install/status")
    done = answer_of(
        client, schema, "GET", f"{sn}/task/{{taskId}}", f"{base}/task/{reply['taskId']}"
    )
    assert done["function"] == "reinstallServer"
    wait_task(client, name, reply["taskId"])
    sb.api.set_timings(TaskTimings(reboot_init=30.0, tick=0.01))
    pending = client.post(f"{base}/reboot")
    cancel = f"{base}/task/{pending['taskId']}/cancel"
    answer_of(client, schema, "POST", f"{sn}/task/{{taskId}}/cancel", cancel)


def test_put_accepts_exactly_the_writable_fields_of_the_model(
    sandbox: Sandbox, schema: Schema
) -> None:
    client = sandbox.client()
    name = sandbox.names[0]
    base = f"/dedicated/server/{name}"
    properties = schema.models["dedicated.server.Dedicated"]["properties"]
    current = client.get(base)
    samples = {"long": current["bootId"], "boolean": False, "dedicated.server.StateEnum": "ok"}
    for key, prop in properties.items():
        if prop["readOnly"]:
            with pytest.raises(ovh.exceptions.BadParametersError, match="read-only"):
                client.put(base, **{key: current[key]})
            continue
        value = samples.get(prop["type"], f"value-of-{key}")
        assert client.put(base, **{key: value}) is None
        assert client.get(base)[key] == value
    assert client.get(base)["name"] == name


def test_set_chaos_in_process_takes_the_control_json(sandbox: Sandbox) -> None:
    with pytest.raises(ChaosConfigError):
        sandbox.api.set_chaos({"rules": [{"kind": "500"}], "error_shape": "xml"})
    assert sandbox.api.chaos.snapshot()["rules"] == []
    sandbox.api.set_chaos({"rules": [{"kind": "429", "count": 1}], "error_shape": "message"})
    answer = raw(sandbox, "GET", "/dedicated/server")
    assert (answer.status_code, answer.json()) == (429, {"message": "Too many requests"})
    assert "Retry-After" not in answer.headers
    assert raw(sandbox, "GET", "/dedicated/server").status_code == 200
