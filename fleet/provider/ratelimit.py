"""Pacing of OVH API calls: a token bucket shared by every thread, ``Retry-After`` parsing and
the retry policy (bounds and backoff of retries on transient errors).

OVH asks for fair use of about 60 requests a minute per consumer key, and answers 429 beyond it.
One :class:`TokenBucket` per provider (hence per consumer key) keeps every thread of a rollout
under that rate, and a 429's ``Retry-After`` pauses the whole bucket, not only the thread that
got it, so the other threads do not hammer the API in the meantime.

A provider paces through a :class:`Pacer`: in one process, a :class:`TokenBucket`; when a
rollout's pipelines run on workers, a bucket every process of the key shares (kept in the
broker: :mod:`fleet.workers.pacer`), which the process joins through its :class:`ProcessPacer`.

Time is injected (``monotonic`` and ``sleep``) so that tests drive the bucket with a fake clock.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from fleet.errors import ProviderTransient
from fleet.provider.base import Pacing

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Calls that may go at once after a quiet spell (the bucket's size).
DEFAULT_BURST = 5
#: How many times :meth:`TokenBucket.acquire` may sleep before giving up (bounds the loop).
MAX_ACQUIRE_ROUNDS = 10_000
#: Rounding slack: a bucket 1e-12 short of a token after sleeping exactly the computed wait
#: has its token (floating point must not turn one wait into thousands of tiny ones).
_EPSILON = 1e-9
_MIN_WAIT = 1e-3


class Pacer(Protocol):
    """What paces a provider's calls: a token per call, and a pause for everyone on a 429."""

    @property
    def per_minute(self) -> float: ...

    def acquire(self) -> float:
        """Take one token, sleeping until one is available. Returns the seconds slept."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every acquisition for ``seconds`` (the server said ``Retry-After``)."""
        ...

    def waiting(self) -> tuple[int, float]:
        """How many acquisitions wait for a token now, and the longest wait so far (s)."""
        ...

    def usage(self) -> Pacing:
        """Tokens this process asked for so far and the seconds its threads waited for them."""
        ...


def describe_waits(pacer: Pacer, where: str = "") -> str | None:
    """A heartbeat's line about what the rate limit holds back now, when a call has waited a
    second or more (``where``: whose calls, e.g. "across 3 processes")."""
    count, longest = pacer.waiting()
    if not count or longest < 1.0:
        return None
    return (
        f"OVH rate limit ({pacer.per_minute:g} requests/min{where}): {count} call(s) waiting, "
        f"the longest for {longest:.0f}s"
    )


class TokenBucket:
    """Allow ``rate_per_minute`` acquisitions a minute on average, up to ``burst`` at once.

    Thread-safe: the lock only guards the arithmetic; sleeping happens outside it, so a thread
    waiting for a token never blocks the others from reading the state.
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be positive, not {rate_per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate_per_second = rate_per_minute / 60.0
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = monotonic()
        self._paused_until = float("-inf")
        self._waiting: dict[int, float] = {}  # a waiting acquisition -> when it began to wait
        self._taken = 0
        self._waited = 0.0

    @property
    def per_minute(self) -> float:
        return self.rate_per_second * 60.0

    def acquire(self) -> float:
        """Take one token, sleeping until one is available. Returns the seconds slept."""
        slept, me = 0.0, object()
        try:
            for _ in range(MAX_ACQUIRE_ROUNDS):
                wait = self._try_take()
                if wait <= 0:
                    return slept
                if not slept:
                    with self._lock:
                        self._waiting[id(me)] = self._monotonic()
                self._sleep(wait)
                slept += wait
        finally:
            with self._lock:
                self._taken += 1
                self._waited += slept
                self._waiting.pop(id(me), None)  # also when the sleep was cut short
        raise RuntimeError(f"no token after {MAX_ACQUIRE_ROUNDS} rounds ({slept:.1f}s slept)")

    def waiting(self) -> tuple[int, float]:
        """How many acquisitions wait for a token now, and the longest wait so far (s)."""
        with self._lock:
            starts = list(self._waiting.values())
            now = self._monotonic()
        return len(starts), max((now - s for s in starts), default=0.0)

    def usage(self) -> Pacing:
        """Tokens asked for so far and the seconds every thread spent waiting for them."""
        with self._lock:
            return Pacing(self._taken, self._waited, self.rate_per_second * 60.0)

    def pause(self, seconds: float) -> None:
        """Hold every acquisition for ``seconds`` (the server said ``Retry-After``)."""
        with self._lock:
            until = self._monotonic() + seconds
            self._paused_until = max(self._paused_until, until)

    def _try_take(self) -> float:
        """Take a token now and return 0, or return how long to wait before trying again."""
        with self._lock:
            now = self._monotonic()
            if now < self._paused_until:
                return self._paused_until - now
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_second)
            self._updated = now
            if self._tokens >= 1.0 - _EPSILON:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return max(_MIN_WAIT, (1.0 - self._tokens) / self.rate_per_second)


class ProcessPacer:
    """The pacer of one process's provider: its own :class:`TokenBucket` until the process joins
    a bucket shared with other processes (:meth:`share`: a rollout dispatched to workers, or a
    worker), then that one. Usage counts both, so nothing paced before the switch is lost."""

    def __init__(self, own: TokenBucket) -> None:
        self.own = own
        self.shared: Pacer | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Pacer:
        with self._lock:
            return self.shared or self.own

    def share(self, shared: Pacer) -> None:
        """Pace through ``shared`` from now on (the first one joined stays)."""
        with self._lock:
            self.shared = self.shared or shared

    @property
    def per_minute(self) -> float:
        return self.current.per_minute

    def acquire(self) -> float:
        return self.current.acquire()

    def pause(self, seconds: float) -> None:
        self.current.pause(seconds)

    def waiting(self) -> tuple[int, float]:
        return self.current.waiting()

    def usage(self) -> Pacing:
        mine, shared = self.own.usage(), self.shared
        return mine.plus(shared.usage()) if shared is not None else mine


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110).

    Returns None when the header is absent or unreadable (then plain backoff applies), and never
    a negative number. ``now`` (aware) is needed only for the date form.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (at - reference).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and pacing of retries on transient errors.

    Waits grow as ``initial_wait * 2**(n-1)`` up to ``max_wait``, plus up to ``jitter`` seconds at
    random so that many threads do not retry in step; a ``Retry-After`` is always honoured.
    """

    attempts: int = 8
    total_seconds: float = 300.0
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1`` after ``attempt`` failed (1-based)."""
        base = min(self.max_wait, self.initial_wait * 2.0 ** max(0, attempt - 1))
        return base + rng.uniform(0.0, self.jitter)

    def wait_for(self, attempt: int, exc: BaseException | None, rng: random.Random) -> float:
        """The backoff, but never less than the error's ``Retry-After``."""
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return max(self.backoff(attempt, rng), float(retry_after))

    def retrying(
        self,
        label: str,
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
    ) -> Retrying:
        """A tenacity ``Retrying`` on :class:`~fleet.errors.ProviderTransient` within this
        policy's attempts and total time; each retry is logged with ``label``."""
        start = monotonic()

        def stop(state: RetryCallState) -> bool:
            elapsed = monotonic() - start
            too_late = elapsed + (state.upcoming_sleep or 0.0) > self.total_seconds
            return state.attempt_number >= self.attempts or too_late

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_for(state.attempt_number, exc, rng)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s failed (attempt %d/%d), retrying in %.1fs: %s",
                label,
                state.attempt_number,
                self.attempts,
                state.upcoming_sleep,
                exc,
            )

        return Retrying(
            sleep=sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(ProviderTransient),
            before_sleep=before_sleep,
            reraise=True,
        )
