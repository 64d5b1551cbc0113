"""A process's pacer: its own bucket until it joins a shared one; usage over both; the
heartbeat's line; the name of the bucket a consumer key shares. On a fake clock."""

from __future__ import annotations

from fleet.provider.base import Pacing, usage_json
from fleet.provider.ovh_client import build_client, pacing_key
from fleet.provider.ratelimit import ProcessPacer, TokenBucket, describe_waits
from tests.unit.test_provider_ratelimit import FakeClock, bucket


class Recorder:
    """A pacer that records what it is asked (stands for the shared bucket)."""

    per_minute = 30.0

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.waits = (0, 0.0)

    def acquire(self) -> float:
        self.calls.append("acquire")
        return 0.5

    def pause(self, seconds: float) -> None:
        self.calls.append(f"pause {seconds:g}")

    def waiting(self) -> tuple[int, float]:
        return self.waits

    def usage(self) -> Pacing:
        return Pacing(len(self.calls), 0.5 * len(self.calls), self.per_minute)


def test_a_process_paces_alone_until_it_shares_then_counts_both() -> None:
    clock = FakeClock()
    pacer = ProcessPacer(bucket(clock, rate=60.0, burst=2))
    for _ in range(3):
        pacer.acquire()
    assert clock.sleeps == [1.0]  # its own bucket: burst 2, then one a second
    shared = Recorder()
    pacer.share(shared)
    pacer.acquire()
    pacer.pause(7)
    assert shared.calls == ["acquire", "pause 7"]
    assert clock.sleeps == [1.0]  # its own bucket no longer paces anything
    assert pacer.per_minute == 30.0
    assert pacer.usage() == Pacing(3 + 2, 1.0 + 1.0, 30.0)


def test_the_first_shared_bucket_joined_stays() -> None:
    pacer = ProcessPacer(bucket(FakeClock()))
    first, second = Recorder(), Recorder()
    pacer.share(first)
    pacer.share(second)
    pacer.acquire()
    assert first.calls == ["acquire"] and second.calls == []


def test_the_heartbeat_names_waits_of_a_second_or_more_only() -> None:
    shared = Recorder()
    assert describe_waits(shared) is None
    shared.waits = (4, 0.9)
    assert describe_waits(shared) is None
    shared.waits = (4, 12.4)
    line = describe_waits(shared, ", shared by every process of the key")
    assert line == (
        "OVH rate limit (30 requests/min, shared by every process of the key): "
        "4 call(s) waiting, the longest for 12s"
    )


def test_a_real_bucket_reports_its_waiters_to_the_heartbeat() -> None:
    clock = FakeClock()
    limiter = TokenBucket(60.0, 1, monotonic=clock.monotonic, sleep=clock.sleep)
    limiter.acquire()
    limiter._waiting[1] = clock.now - 3  # a thread that began waiting 3 s ago
    assert describe_waits(limiter) == (
        "OVH rate limit (60 requests/min): 1 call(s) waiting, the longest for 3s"
    )


def test_usages_add_up_and_none_stays_none() -> None:
    assert usage_json() is None
    assert usage_json(None, None) is None
    assert usage_json(Pacing(2, 1.0, 60.0), None, Pacing(3, 2.25, 60.0)) == {
        "requests": 5,
        "rate_limit_wait": 3.2,
        "per_minute": 60.0,
    }


def test_the_shared_bucket_is_named_by_endpoint_and_keys_never_shown() -> None:
    def key(endpoint: str, app: str, consumer: str) -> str:
        client = build_client(
            endpoint, application_key=app, application_secret="s", consumer_key=consumer
        )
        return pacing_key(client)

    one = key("ovh-eu", "app", "consumer-1")
    assert one == key("ovh-eu", "app", "consumer-1")
    assert one.startswith("https://eu.api.ovh.com/1.0|")
    assert "consumer-1" not in one and "app" not in one.split("|")[1]
    assert len({one, key("ovh-eu", "app", "consumer-2"), key("ovh-ca", "app", "consumer-1")}) == 3
