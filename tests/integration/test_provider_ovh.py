"""OvhProvider against the fake OVH API over real HTTP, through an unmodified ``ovh.Client``.

Requests are counted at the fake: a zero-second latency rule, added first, fires on every
request the fake receives (``rule.fired``), so "no retry" and "no extra request" are measured
where they matter, on the server side.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from fleet.clock import SystemClock
from fleet.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRefused,
    TaskFailed,
)
from fleet.provider.ovh import SANDBOX_ENDPOINT, OvhProvider, RetryPolicy, build_client
from fleet.sandbox.ovh_api import Credentials, ErrorShape, FakeOvhApi, ServerSpec, TaskTimings
from fleet.sandbox.ovh_chaos import ChaosRule, Early404, FailureStatus, TaskFailure

if TYPE_CHECKING:
    from fleet.provider.base import Task

pytestmark = pytest.mark.integration

NS1 = "ns1001.ip-203-0-113.eu"
NS2 = "ns1002.ip-203-0-113.eu"
NS3 = "ns1003.ip-198-51-100.net"
SPECS = [
    ServerSpec(NS1, "127.0.10.1", "gra3", "G101A01", hybrid=True, hdd_count=4, hdd_size_gb=14000),
    ServerSpec(NS2, "127.0.10.2", "rbx8", "R802B07", hybrid=True, system_disk_type="SSD"),
    ServerSpec(NS3, "127.0.10.3", "bhs5", "B512C03", hybrid=False),
]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetRescueKeyForTests fleet@test"
FAST_RETRY = RetryPolicy(
    attempts=8, total_seconds=30.0, initial_wait=0.01, max_wait=0.1, jitter=0.01
)


class RecordingClock(SystemClock):
    """The real clock, remembering every sleep asked of it."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


class FakeClock:
    """Shared by the fake API and the provider: time moves only when the provider sleeps.

    Wall time starts at the real now, so python-ovh's signature timestamps (real time plus the
    offset it read from ``/auth/time``) stay within the fake's allowed skew.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start = datetime.now(UTC)
        self._elapsed = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        with self._lock:
            return 5000.0 + self._elapsed

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._elapsed += max(0.0, seconds)

    @property
    def elapsed(self) -> float:
        with self._lock:
            return self._elapsed


@pytest.fixture
def creds() -> Credentials:
    return Credentials.generate(random.Random(11))


@contextmanager
def fake_api(creds: Credentials, **options: Any) -> Iterator[FakeOvhApi]:
    """A started fake API with fast tasks over :data:`SPECS`; stopped afterwards."""
    api = FakeOvhApi(SPECS, creds, **{"timings": TaskTimings.fast(), **options})
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _start(api: FakeOvhApi) -> tuple[FakeOvhApi, ChaosRule]:
    counter = ChaosRule(kind="latency", seconds=0.0)
    api.chaos.add_rule(counter)
    api.start()
    return api, counter


@pytest.fixture
def sandbox(creds: Credentials) -> Iterator[tuple[FakeOvhApi, ChaosRule]]:
    """The fake API with fast tasks, and the rule that counts its requests."""
    api = FakeOvhApi(SPECS, creds, timings=TaskTimings.fast(), seed=20240229)
    try:
        yield _start(api)
    finally:
        api.stop()


@pytest.fixture
def api(sandbox: tuple[FakeOvhApi, ChaosRule]) -> FakeOvhApi:
    return sandbox[0]


@pytest.fixture
def counter(sandbox: tuple[FakeOvhApi, ChaosRule]) -> ChaosRule:
    return sandbox[1]


def make_client(api: FakeOvhApi, creds: Credentials, **override: str) -> Any:
    keys = {
        "application_key": creds.application_key,
        "application_secret": creds.application_secret,
        "consumer_key": creds.consumer_key,
        **override,
    }
    return build_client(SANDBOX_ENDPOINT, endpoint_url=api.url, timeout=10.0, **keys)


def make_provider(api: FakeOvhApi, creds: Credentials, **options: Any) -> OvhProvider:
    settings: dict[str, Any] = {
        "rate_limit_per_minute": 600_000.0,
        "burst": 1000,
        "retry": FAST_RETRY,
        "poll_interval": 0.01,
        "max_poll_interval": 0.05,
        "task_grace_seconds": 5.0,
        "rng": random.Random(5),
    }
    settings.update(options)
    client = make_client(api, creds, **settings.pop("keys", {}))
    return OvhProvider(client, **settings)


@pytest.fixture
def provider(api: FakeOvhApi, creds: Credentials) -> OvhProvider:
    return make_provider(api, creds)


# --------------------------------------------------------------------------------------------
# The Protocol, route by route


def test_reads_map_the_fake_servers(provider: OvhProvider, api: FakeOvhApi) -> None:
    assert provider.list_servers() == [NS1, NS2, NS3]
    server = provider.server(NS2)
    snap = api.snapshot(NS2)
    assert (server.name, server.ip, server.datacenter, server.rack) == (
        NS2,
        "127.0.10.2",
        "rbx8",
        "R802B07",
    )
    assert (server.state, server.power_state, server.os) == ("ok", "poweron", "debian12_64")
    assert server.boot_id == snap.boot_id
    assert server.rescue_ssh_key is None
    assert provider.tasks(NS2) == []
    assert provider.install_status(NS2) is None
    templates = provider.compatible_templates(NS2)
    assert "debian12_64" in templates
    assert templates == sorted(templates)


def test_hardware_maps_disk_groups_and_is_cached(provider: OvhProvider, counter: ChaosRule) -> None:
    hybrid = provider.hardware(NS1)
    assert [(g.id, g.disk_type, g.count, g.size_gb) for g in hybrid.disk_groups] == [
        (1, "NVME", 2, 960),
        (2, "HDD", 4, 14000),
    ]
    assert hybrid.boot_mode == "uefi"
    assert [g.disk_type for g in provider.hardware(NS2).disk_groups] == ["SSD", "HDD"]
    assert len(provider.hardware(NS3).disk_groups) == 1
    before = counter.fired
    assert provider.hardware(NS1) is hybrid
    assert counter.fired == before


def test_boots_are_per_server_and_rescue_is_chosen_by_kernel(provider: OvhProvider) -> None:
    rescue = {name: provider.rescue_boot(name) for name in (NS1, NS2, NS3)}
    assert {boot.kernel for boot in rescue.values()} == {"rescue12-customer"}
    assert len({boot.id for boot in rescue.values()}) == 3
    for name, boot in rescue.items():
        kinds = {b.kernel: b for b in provider.boots(name, "rescue")}
        assert set(kinds) == {"ipxe-shell", "rescue12-customer", "rescue-customer"}
        assert kinds["rescue12-customer"] == boot
        assert provider.disk_boot(name).kernel == "hd"
    every = provider.boots(NS1)
    assert {b.type for b in every} == {"harddisk", "rescue", "power"}


def test_boot_to_rescue_and_back(provider: OvhProvider, api: FakeOvhApi) -> None:
    seen: list[tuple[str, float]] = []
    for name in (NS1, NS2):
        rescue = provider.rescue_boot(name)
        task = provider.reboot_and_wait(
            name, rescue.id, KEY, timeout=20, progress=lambda t, w: seen.append((t.status, w))
        )
        assert (task.function, task.status) == ("hardReboot", "done")
        assert task.query_id and task.query_id.startswith("EU.")
        assert api.server_mode(name) == "rescue"
        assert api.snapshot(name).rescue_ssh_key == KEY
        assert provider.server(name).rescue_ssh_key == KEY
    assert seen[-1][0] == "done"
    assert all(waited >= 0 for _, waited in seen)
    for name in (NS1, NS2):
        back = provider.reboot_and_wait(name, provider.disk_boot(name).id, "", timeout=20)
        assert back.status == "done"
        assert api.server_mode(name) == "disk"
        assert provider.server(name).rescue_ssh_key is None
    assert api.server_mode(NS3) == "disk"


def test_set_boot_leaves_the_key_alone_unless_told(provider: OvhProvider, api: FakeOvhApi) -> None:
    rescue = provider.rescue_boot(NS1)
    provider.set_boot(NS1, rescue.id, KEY)
    provider.set_boot(NS1, rescue.id)
    assert api.snapshot(NS1).rescue_ssh_key == KEY
    provider.set_boot(NS1, rescue.id, "")
    assert api.snapshot(NS1).rescue_ssh_key is None
    assert api.snapshot(NS1).boot_kernel == "rescue12-customer"


def test_set_boot_with_an_unknown_id_is_refused_at_once(
    provider: OvhProvider, counter: ChaosRule
) -> None:
    provider.list_servers()
    before = counter.fired
    with pytest.raises(ProviderRefused) as caught:
        provider.set_boot(NS1, 1)
    assert type(caught.value) is ProviderRefused
    assert caught.value.status == 400
    assert counter.fired == before + 1


def test_reinstall_and_install_status(provider: OvhProvider, api: FakeOvhApi) -> None:
    api.set_timings(TaskTimings(reinstall_init=0.05, reinstall_todo=0.05, reinstall_doing=0.6))
    task = provider.reinstall(NS1, {"operatingSystem": "debian13_64"})
    assert (task.function, task.status) == ("reinstallServer", "init")
    assert task.comment == "Start bare metal OS installation"
    assert task.query_id
    status = provider.install_status(NS1)
    assert status is not None
    assert [step.status for step in status.steps][:1] in (["todo"], ["doing"], ["done"])
    done = provider.wait_task(NS1, task.id, timeout=20)
    assert done.status == "done"
    assert api.snapshot(NS1).os == "debian13_64"
    assert provider.install_status(NS1) is None


def test_unknown_server_is_not_found_in_every_error_shape(
    provider: OvhProvider, api: FakeOvhApi
) -> None:
    shapes: tuple[ErrorShape, ...] = ("class", "legacy", "message")
    for shape in shapes:
        api.set_error_shape(shape)
        with pytest.raises(ProviderNotFound) as caught:
            provider.server("ns9.nowhere")
        error = caught.value
        assert error.status == 404
        assert error.server == "ns9.nowhere"
        assert error.query_id and error.query_id in str(error)
        assert "does not exist" in str(error)


def test_a_bad_reinstall_request_fails_at_once(provider: OvhProvider, counter: ChaosRule) -> None:
    provider.list_servers()
    before = counter.fired
    with pytest.raises(ProviderRefused, match="HTTP 400") as caught:
        provider.reinstall(NS1, {"operatingSystem": "windows95"})
    assert type(caught.value) is ProviderRefused
    # one look for a task to adopt (the task list: empty), then the one POST
    assert counter.fired == before + 2


# --------------------------------------------------------------------------------------------
# Adoption: never two reboots or reinstalls


def test_an_in_flight_reboot_is_adopted(
    provider: OvhProvider, api: FakeOvhApi, creds: Credentials
) -> None:
    api.set_timings(TaskTimings(reboot_init=0.5, reboot_todo=0.5, reboot_doing=0.5))
    first = provider.reboot(NS1)
    second = provider.reboot(NS1)
    assert second.id == first.id
    assert provider.tasks(NS1, function="hardReboot") == [first.id]
    # another client started this one: still adopted
    other = make_client(api, creds)
    started = other.post(f"/dedicated/server/{NS2}/reboot")
    assert provider.reboot(NS2).id == started["taskId"]
    assert provider.tasks(NS2, function="hardReboot") == [started["taskId"]]
    assert provider.wait_task(NS1, first.id, timeout=20).status == "done"


def test_a_conflict_on_post_adopts_the_task_that_raced_us(
    provider: OvhProvider, api: FakeOvhApi, creds: Credentials
) -> None:
    """A reboot started between our look and our POST answers 409: it is adopted."""
    api.set_timings(TaskTimings(reboot_init=0.5, reboot_todo=0.5, reboot_doing=0.5))
    other = make_client(api, creds)
    raced: dict[str, Any] = {}
    original = provider.in_flight
    calls = 0

    def look_then_race(name: str, function: str) -> Task | None:
        nonlocal calls
        calls += 1
        found = original(name, function)
        if calls == 1:
            raced.update(other.post(f"/dedicated/server/{name}/reboot"))
        return found

    provider.in_flight = look_then_race  # type: ignore[method-assign]
    task = provider.reboot(NS1)
    assert task.id == raced["taskId"]
    assert provider.tasks(NS1, function="hardReboot") == [raced["taskId"]]


def test_an_in_flight_reinstall_is_adopted(provider: OvhProvider, api: FakeOvhApi) -> None:
    api.set_timings(TaskTimings(reinstall_init=0.5, reinstall_todo=0.5, reinstall_doing=0.5))
    first = provider.reinstall(NS2, {"operatingSystem": "debian12_64"})
    again = provider.reinstall(NS2, {"operatingSystem": "debian12_64"})
    assert again.id == first.id
    assert provider.tasks(NS2, function="reinstallServer") == [first.id]


def test_a_conflict_with_nothing_to_adopt_gives_up_after_bounded_posts(
    api: FakeOvhApi, creds: Credentials
) -> None:
    api.set_timings(TaskTimings(reinstall_init=5.0, reinstall_todo=5.0, reinstall_doing=5.0))
    policy = RetryPolicy(
        attempts=3, total_seconds=30.0, initial_wait=0.01, max_wait=0.02, jitter=0.0
    )
    provider = make_provider(api, creds, retry=policy)
    provider.reinstall(NS3, {"operatingSystem": "debian12_64"})
    posts = ChaosRule(kind="latency", route="POST /dedicated/server/*/reboot", seconds=0.0)
    api.chaos.add_rule(posts)
    with pytest.raises(ProviderConflict) as caught:
        provider.reboot(NS3)
    assert caught.value.status == 409
    assert caught.value.query_id
    assert posts.fired == 3
    assert provider.tasks(NS3, function="hardReboot") == []


def test_reboot_and_wait_waits_out_a_reboot_into_another_boot(
    provider: OvhProvider, api: FakeOvhApi, creds: Credentials
) -> None:
    """A reboot asked before our boot change would land in the old mode: it is not adopted."""
    api.set_timings(TaskTimings(reboot_init=0.2, reboot_todo=0.1, reboot_doing=0.1))
    other = make_client(api, creds)
    stale = other.post(f"/dedicated/server/{NS1}/reboot")
    rescue = provider.rescue_boot(NS1)
    task = provider.reboot_and_wait(NS1, rescue.id, KEY, timeout=20)
    assert task.id != stale["taskId"]
    assert api.server_mode(NS1) == "rescue"
    assert sorted(provider.tasks(NS1, function="hardReboot")) == sorted([stale["taskId"], task.id])


def test_reboot_and_wait_adopts_a_reboot_into_the_same_boot(
    provider: OvhProvider, api: FakeOvhApi
) -> None:
    """A resumed run whose earlier attempt set the boot and rebooted: no second reboot."""
    api.set_timings(TaskTimings(reboot_init=0.3, reboot_todo=0.1, reboot_doing=0.1))
    rescue = provider.rescue_boot(NS1)
    provider.set_boot(NS1, rescue.id, KEY)
    earlier = provider.reboot(NS1)
    task = provider.reboot_and_wait(NS1, rescue.id, KEY, timeout=20)
    assert task.id == earlier.id
    assert provider.tasks(NS1, function="hardReboot") == [earlier.id]
    assert api.server_mode(NS1) == "rescue"


# --------------------------------------------------------------------------------------------
# Chaos: nothing surfaces


def rescue_round_trip(provider: OvhProvider, name: str) -> list[Task]:
    """The provider's share of a rescue stage and the way back."""
    provider.list_servers()
    provider.server(name)
    provider.hardware(name)
    provider.compatible_templates(name)
    there = provider.reboot_and_wait(name, provider.rescue_boot(name).id, KEY, timeout=30)
    back = provider.reboot_and_wait(name, provider.disk_boot(name).id, "", timeout=30)
    return [there, back]


@pytest.mark.parametrize("shape", ["class", "legacy", "message"])
def test_rides_through_500s(provider: OvhProvider, api: FakeOvhApi, shape: ErrorShape) -> None:
    api.set_error_shape(shape)
    boom = ChaosRule(kind="500", probability=0.3)
    api.chaos.add_rule(boom)
    tasks = rescue_round_trip(provider, NS1)
    assert [t.status for t in tasks] == ["done", "done"]
    assert boom.fired > 0
    assert len(provider.tasks(NS1, function="hardReboot")) == 2
    assert api.server_mode(NS1) == "disk"


def test_rides_through_html_502s(provider: OvhProvider, api: FakeOvhApi) -> None:
    proxy = ChaosRule(kind="502", probability=0.3)
    api.chaos.add_rule(proxy)
    assert [t.status for t in rescue_round_trip(provider, NS2)] == ["done", "done"]
    assert proxy.fired > 0
    assert len(provider.tasks(NS2, function="hardReboot")) == 2


def test_rides_through_429_and_honours_retry_after(api: FakeOvhApi, creds: Credentials) -> None:
    clock = RecordingClock()
    provider = make_provider(api, creds, clock=clock)
    slow_down = ChaosRule(kind="429", route="GET /dedicated/server/*", retry_after=1, count=2)
    api.chaos.add_rule(slow_down)
    assert provider.server(NS1).name == NS1
    assert slow_down.fired == 2
    assert sum(1 for s in clock.sleeps if s >= 1.0) >= 2


def test_rides_through_early_404_on_new_tasks(provider: OvhProvider, api: FakeOvhApi) -> None:
    hidden = Early404(gets=4, function="*")
    api.chaos.hide_new_tasks(hidden)
    assert [t.status for t in rescue_round_trip(provider, NS3)] == ["done", "done"]
    assert hidden.fired == 2
    task = provider.reinstall(NS3, {"operatingSystem": "debian12_64"})
    assert provider.wait_task(NS3, task.id, timeout=30).status == "done"


def test_an_early_404_beyond_the_grace_period_is_raised(
    api: FakeOvhApi, creds: Credentials
) -> None:
    provider = make_provider(api, creds, task_grace_seconds=0.1)
    api.chaos.hide_new_tasks(Early404(gets=1000, function="hardReboot"))
    task = provider.reboot(NS1)
    with pytest.raises(ProviderNotFound, match=f"task/{task.id}"):
        provider.wait_task(NS1, task.id, timeout=20)


def test_rides_through_latency_and_mixed_chaos(provider: OvhProvider, api: FakeOvhApi) -> None:
    api.chaos.add_rule(ChaosRule(kind="latency", seconds=0.02))
    api.chaos.add_rule(
        ChaosRule(kind="500", route="GET /dedicated/server/*/task/*", probability=0.3)
    )
    api.chaos.add_rule(ChaosRule(kind="502", route="POST /**", count=1))
    api.chaos.add_rule(ChaosRule(kind="429", route="PUT /**", count=1, retry_after=0))
    api.chaos.hide_new_tasks(Early404(gets=2))
    assert [t.status for t in rescue_round_trip(provider, NS1)] == ["done", "done"]
    assert len(provider.tasks(NS1, function="hardReboot")) == 2


def test_a_lost_post_is_retried_once_nothing_is_in_flight(
    provider: OvhProvider, api: FakeOvhApi
) -> None:
    lost = ChaosRule(kind="500", route="POST /dedicated/server/*/reboot", count=2)
    api.chaos.add_rule(lost)
    task = provider.reboot(NS2)
    assert lost.fired == 2
    assert provider.tasks(NS2, function="hardReboot") == [task.id]


# --------------------------------------------------------------------------------------------
# Failing clearly


@pytest.mark.parametrize("status", ["ovhError", "customerError"])
def test_a_failed_task_raises_task_failed(
    provider: OvhProvider, api: FakeOvhApi, status: FailureStatus
) -> None:
    api.chaos.fail_tasks(TaskFailure(function="hardReboot", status=status, count=1))
    rescue = provider.rescue_boot(NS1)
    with pytest.raises(TaskFailed) as caught:
        provider.reboot_and_wait(NS1, rescue.id, KEY, timeout=20)
    error = caught.value
    (task_id,) = provider.tasks(NS1, function="hardReboot")
    assert error.server == NS1
    assert error.query_id and error.query_id.startswith("EU.")
    assert str(error).startswith(f"{NS1}: task {task_id} (hardReboot) ended {status}")
    assert error.query_id in str(error)
    # the failed task is not adopted: the next reboot is a new task, and it lands
    assert provider.reboot_and_wait(NS1, rescue.id, KEY, timeout=20).id != task_id
    assert api.server_mode(NS1) == "rescue"


def test_waiting_past_the_timeout_says_what_it_waited_for(
    provider: OvhProvider, api: FakeOvhApi
) -> None:
    api.set_timings(TaskTimings(reboot_init=0.05, reboot_todo=0.05, reboot_doing=30.0))
    task = provider.reboot(NS1)
    with pytest.raises(ProviderError) as caught:
        provider.wait_task(NS1, task.id, timeout=0.5)
    assert type(caught.value) is ProviderError
    assert str(caught.value).startswith(
        f"{NS1}: timed out after 0.5s waiting for task {task.id} (hardReboot), last status doing"
    )


@pytest.mark.parametrize(
    ("override", "status"),
    [
        ({"application_secret": "not-the-secret-at-all-0123456789"}, 400),
        ({"consumer_key": "someone-elses-consumer-key-00000"}, 403),
        ({"application_key": "unknownappkey000"}, 403),
    ],
)
def test_bad_credentials_fail_at_once_without_retry(
    api: FakeOvhApi, creds: Credentials, counter: ChaosRule, override: dict[str, str], status: int
) -> None:
    provider = make_provider(api, creds, keys=override)
    before = counter.fired
    with pytest.raises(ProviderAuthError) as caught:
        provider.server(NS1)
    error = caught.value
    assert error.status == status
    assert error.server == NS1
    assert error.query_id
    assert error.hint
    assert counter.fired == before + 2  # GET /auth/time, then the one refused call
    secret_like = set(override.values()) | {creds.application_secret, creds.consumer_key}
    assert not any(value in str(error) for value in secret_like)
    with pytest.raises(ProviderAuthError):
        provider.reboot(NS1)
    assert counter.fired == before + 3  # the adoption look is refused; no POST is sent


# --------------------------------------------------------------------------------------------
# Pacing and threads


def _paced_sandbox(creds: Credentials, clock: FakeClock, per_minute: int) -> FakeOvhApi:
    api = FakeOvhApi(SPECS, creds, seed=7, clock=clock, max_time_skew=100_000)
    api.chaos.set_rate_limit(per_minute)
    return api


def test_the_rate_limit_keeps_under_the_server_limit(creds: Credentials) -> None:
    clock = FakeClock()
    api, counter = _start(_paced_sandbox(creds, clock, per_minute=60))
    try:
        provider = make_provider(api, creds, clock=clock, rate_limit_per_minute=50, burst=5)
        for _ in range(80):  # more than the server takes in a minute: pacing is needed
            provider.list_servers()
        assert counter.fired == 1 + 80  # /auth/time, then no 429 and so no retry
        assert clock.elapsed >= (80 - 5) / 50 * 60 - 1e-6
    finally:
        api.stop()


def test_a_provider_over_the_server_limit_is_slowed_by_retry_after(creds: Credentials) -> None:
    clock = FakeClock()
    api, counter = _start(_paced_sandbox(creds, clock, per_minute=60))
    try:
        provider = make_provider(api, creds, clock=clock, retry=RetryPolicy(jitter=0.0))
        for _ in range(70):
            provider.list_servers()
        assert counter.fired > 1 + 70  # some calls got a 429 and went again
        assert clock.elapsed >= 60.0
    finally:
        api.stop()


def test_one_provider_is_shared_by_threads(provider: OvhProvider, api: FakeOvhApi) -> None:
    auth_time = ChaosRule(kind="latency", route="GET /auth/time", seconds=0.0)
    api.chaos.add_rule(auth_time)
    api.chaos.add_rule(ChaosRule(kind="500", probability=0.1))
    errors: list[BaseException] = []
    results: dict[str, str] = {}

    def work(name: str) -> None:
        try:
            provider.server(name)
            provider.hardware(name)
            task = provider.reboot_and_wait(name, provider.rescue_boot(name).id, KEY, timeout=30)
            results[name] = task.status
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in (NS1, NS2, NS3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == {NS1: "done", NS2: "done", NS3: "done"}
    assert auth_time.fired == 1
    assert {api.server_mode(name) for name in (NS1, NS2, NS3)} == {"rescue"}
