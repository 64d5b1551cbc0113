"""Task adoption by OVH's own dates, against the fake OVH API over real HTTP.

``reboot(since=T)`` and ``reinstall(since=T)`` adopt only a task OVH dated at or after ``T``;
``task_since`` tells a resume whether its request reached OVH. Each guard has the case that
should slip past it: an old finished task whose details answer 404 (once taken for a fresh
one), a reboot of the same second asked just before ``T``, a reboot still running from before
``T`` (its boot settings are the old ones), a skewed clock on this machine.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from fleet.clock import SystemClock
from fleet.provider.ovh_tasks import next_whole_second
from fleet.sandbox.ovh_api import Credentials, FakeOvhApi, TaskTimings
from fleet.sandbox.ovh_chaos import ChaosRule, Early404
from tests.integration.test_provider_ovh import (
    KEY,
    NS1,
    NS2,
    fake_api,
    make_client,
    make_provider,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fleet.provider.ovh import OvhProvider

pytestmark = pytest.mark.integration

REBOOT = "hardReboot"


@pytest.fixture
def creds() -> Credentials:
    return Credentials.generate(random.Random(23))


@pytest.fixture
def api(creds: Credentials) -> Iterator[FakeOvhApi]:
    with fake_api(creds, seed=20260301) as fake:
        yield fake


@pytest.fixture
def provider(api: FakeOvhApi, creds: Credentials) -> OvhProvider:
    return make_provider(api, creds, task_grace_seconds=0.3)


def now() -> datetime:
    return datetime.now(UTC)


def reboots(provider: OvhProvider, name: str) -> list[int]:
    return sorted(provider.tasks(name, function=REBOOT))


def test_dates_come_back_aware_utc_from_paris_time(provider: OvhProvider) -> None:
    before = now().replace(microsecond=0)
    task = provider.reboot(NS1)
    assert task.start_date is not None and task.start_date.tzinfo is UTC
    assert before <= task.start_date <= now()
    done = provider.wait_task(NS1, task.id, timeout=20)
    assert done.done_date is not None and done.done_date >= task.start_date


def test_task_since_tells_sent_from_never_sent(provider: OvhProvider) -> None:
    asked = now()
    assert provider.task_since(NS1, REBOOT, asked) is None  # never sent
    task = provider.reboot(NS1, since=asked)
    assert task.start_date is not None and task.start_date >= asked
    found = provider.task_since(NS1, REBOOT, asked)
    assert found is not None and (found.id, found.start_date) == (task.id, task.start_date)
    provider.wait_task(NS1, task.id, timeout=20)
    found = provider.task_since(NS1, REBOOT, asked)
    assert found is not None and (found.id, found.status) == (task.id, "done")  # any status
    assert provider.task_since(NS1, REBOOT, now() + timedelta(seconds=1)) is None
    assert provider.task_since(NS1, "reinstallServer", asked) is None


def test_an_old_finished_task_whose_details_answer_404_is_not_adopted(
    provider: OvhProvider, api: FakeOvhApi
) -> None:
    """Once taken for a task "just created": the reboot it stood for was skipped."""
    api.chaos.hide_new_tasks(Early404(gets=10_000, function=REBOOT, count=1))
    old = provider.reboot(NS1)
    clock, api_task = SystemClock(), api.task(NS1, old.id)
    deadline = clock.monotonic() + 120  # a loaded machine slows the fake's ticker, not its logic
    while api_task["status"] != "done" and clock.monotonic() < deadline:
        clock.sleep(0.02)
        api_task = api.task(NS1, old.id)
    assert api_task["status"] == "done"
    for since in (None, now()):
        task = provider.reboot(NS1, since=since)
        assert task.id != old.id
        provider.wait_task(NS1, task.id, timeout=20)
    assert len(reboots(provider, NS1)) == 3


def test_a_fresh_task_whose_details_lag_is_adopted_after_a_lost_answer(
    api: FakeOvhApi, creds: Credentials
) -> None:
    provider = make_provider(api, creds, task_grace_seconds=5.0)
    api.chaos.hide_new_tasks(Early404(gets=3, function=REBOOT))
    lost = ChaosRule(kind="lost", route="POST /dedicated/server/*/reboot", count=1)
    api.chaos.add_rule(lost)
    asked = now()
    task = provider.reboot(NS2, since=asked)
    assert lost.fired == 1
    assert reboots(provider, NS2) == [task.id]  # adopted, not asked twice
    assert provider.wait_task(NS2, task.id, timeout=20).status == "done"


@pytest.mark.parametrize("function", ["reboot", "reinstall"])
def test_a_lost_answer_is_recognised_by_date_and_never_sent_twice(
    provider: OvhProvider, api: FakeOvhApi, function: str
) -> None:
    lost = ChaosRule(kind="lost", route=f"POST /dedicated/server/*/{function}", count=1)
    api.chaos.add_rule(lost)
    asked = now()
    if function == "reboot":
        task = provider.reboot(NS1, since=asked)
    else:
        task = provider.reinstall(NS1, {"operatingSystem": "debian12_64"}, since=asked)
    assert lost.fired == 1
    assert provider.tasks(NS1, function=task.function) == [task.id]
    assert task.start_date is not None and task.start_date >= asked


def test_a_reboot_of_the_same_second_asked_before_since_is_not_adopted(
    provider: OvhProvider, api: FakeOvhApi, creds: Credentials
) -> None:
    """OVH dates to the second: a task of since's second may be older, so it is not ours."""
    api.set_timings(TaskTimings(reboot_init=0.01, reboot_todo=0.01, reboot_doing=0.01))
    other = make_client(api, creds)
    second = next_whole_second(now())
    SystemClock().sleep((second - now()).total_seconds() + 0.05)
    earlier = other.post(f"/dedicated/server/{NS1}/reboot")
    asked = now()
    assert asked.replace(microsecond=0) == second  # the same second, and after it
    provider.wait_task(NS1, earlier["taskId"], timeout=20)
    assert provider.task_since(NS1, REBOOT, asked) is None
    task = provider.reboot(NS1, since=asked)
    assert task.id != earlier["taskId"]
    assert task.start_date is not None and task.start_date > second


def test_a_reboot_running_from_before_since_is_waited_out_not_adopted(
    provider: OvhProvider, api: FakeOvhApi, creds: Credentials
) -> None:
    """The older reboot carries the old boot: adopting it would leave the server on disk."""
    api.set_timings(TaskTimings(reboot_init=0.3, reboot_todo=0.2, reboot_doing=0.2))
    other = make_client(api, creds)
    stale = other.post(f"/dedicated/server/{NS1}/reboot")
    asked = now()
    provider.set_boot(NS1, provider.rescue_boot(NS1).id, KEY)
    task = provider.reboot(NS1, since=asked)
    assert task.id != stale["taskId"]
    assert provider.task(NS1, stale["taskId"]).status == "done"  # waited out first
    provider.wait_task(NS1, task.id, timeout=20)
    assert api.server_mode(NS1) == "rescue"
    assert reboots(provider, NS1) == sorted([stale["taskId"], task.id])


def test_without_since_a_running_reboot_is_still_adopted(
    provider: OvhProvider, api: FakeOvhApi
) -> None:
    api.set_timings(TaskTimings(reboot_init=0.5, reboot_todo=0.5, reboot_doing=0.5))
    first = provider.reboot(NS1)
    assert provider.reboot(NS1).id == first.id
    # since before the first one was created: it is ours, adopted in any status
    assert provider.reboot(NS1, since=first.start_date).id == first.id


class SkewedClock(SystemClock):
    """The fake API's clock, ``offset`` seconds ahead of this machine's."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return super().now() + self.offset


@pytest.mark.parametrize("offset", [90.0, -90.0])
def test_a_skewed_local_clock_is_corrected_by_ovhs_time(creds: Credentials, offset: float) -> None:
    """Without the correction OVH's dates and ours are a minute and a half apart: with the
    API ahead, an older task looks newer than since (and is adopted); behind, ours looks older."""
    with fake_api(creds, seed=5, clock=SkewedClock(offset)) as api:
        provider = make_provider(api, creds, task_grace_seconds=0.3)
        older = provider.reboot(NS1)
        provider.wait_task(NS1, older.id, timeout=20)
        asked = now()
        assert provider.task_since(NS1, REBOOT, asked) is None
        lost = ChaosRule(kind="lost", route="POST /dedicated/server/*/reboot", count=1)
        api.chaos.add_rule(lost)
        task = provider.reboot(NS1, since=asked)
        assert task.id != older.id
        assert lost.fired == 1
        assert provider.tasks(NS1, function=REBOOT) == sorted([older.id, task.id])
        found = provider.task_since(NS1, REBOOT, asked)
        assert found is not None and found.id == task.id


def test_since_must_be_aware(provider: OvhProvider) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        provider.task_since(NS1, REBOOT, datetime(2026, 3, 1))  # noqa: DTZ001 - the bad input
