"""Token bucket and Retry-After parsing, on a fake clock."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

import pytest

from fleet.provider.ratelimit import TokenBucket, parse_retry_after


class FakeClock:
    """Monotonic time that only moves when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def bucket(clock: FakeClock, rate: float = 60.0, burst: int = 5) -> TokenBucket:
    return TokenBucket(rate, burst, monotonic=clock.monotonic, sleep=clock.sleep)


def test_burst_goes_out_at_once_then_one_per_interval() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=60.0, burst=5)
    times = []
    for _ in range(15):
        limiter.acquire()
        times.append(clock.now - 1000.0)
    assert times[:5] == [0.0] * 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[4:])]
    assert gaps == pytest.approx([1.0] * 10)


def test_no_window_exceeds_rate_plus_burst() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=60.0, burst=5)
    times = []
    for _ in range(200):
        limiter.acquire()
        times.append(clock.now)
    for start in times:
        in_window = sum(1 for t in times if start <= t < start + 60.0)
        assert in_window <= 60 + 5
    assert times[-1] - times[0] == pytest.approx(195.0)


@pytest.mark.parametrize("rate", [50.0, 7.0, 61.3, 3600.0])
def test_awkward_rates_need_one_sleep_per_token(rate: float) -> None:
    clock = FakeClock()
    clock.now = 123_456.789
    limiter = bucket(clock, rate=rate, burst=1)
    for _ in range(50):
        limiter.acquire()
    assert len(clock.sleeps) == 49
    assert clock.now - 123_456.789 == pytest.approx(49 * 60.0 / rate)


def test_tokens_refill_while_idle_but_not_beyond_burst() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=60.0, burst=3)
    for _ in range(3):
        limiter.acquire()
    clock.sleep(3600)
    clock.sleeps.clear()
    for _ in range(3):
        assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(1.0)


def test_pause_holds_every_acquisition() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=6000.0, burst=10)
    limiter.pause(30.0)
    slept = limiter.acquire()
    assert slept == pytest.approx(30.0)
    assert limiter.acquire() == 0.0


def test_a_shorter_pause_does_not_shorten_a_longer_one() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=6000.0, burst=10)
    limiter.pause(30.0)
    limiter.pause(5.0)
    assert limiter.acquire() == pytest.approx(30.0)


def test_threads_share_one_bucket() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=60.0, burst=2)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(clock.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(stamps) == 20
    # 20 tokens at 1/s after a burst of 2 need at least 18 s of (fake) time.
    assert max(stamps) - 1000.0 >= 18.0 - 1e-9


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (60.0, 0)])
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        bucket(FakeClock(), rate=rate, burst=burst)


NOW = datetime(2024, 2, 29, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Thu, 29 Feb 2024 12:00:30 GMT", 30.0),
        ("Thu, 29 Feb 2024 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_usage_counts_tokens_and_every_second_slept_for_them() -> None:
    clock = FakeClock()
    limiter = bucket(clock, rate=60.0, burst=5)
    for _ in range(8):
        limiter.acquire()
    usage = limiter.usage()
    assert (usage.requests, usage.per_minute) == (8, 60.0)
    assert usage.waited == pytest.approx(sum(clock.sleeps)) and usage.waited == pytest.approx(3.0)
    assert usage.to_json() == {"requests": 8, "rate_limit_wait": 3.0, "per_minute": 60.0}
