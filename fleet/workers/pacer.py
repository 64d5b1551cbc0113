"""The OVH rate limit shared by every process of a consumer key: a token bucket kept in Redis.

When a rollout runs on workers, each worker process has its own provider: buckets of their own
would let three workers together call OVH three times the limit. :class:`RedisBucket` keeps
one bucket per OVH key (endpoint and a digest of the keys: :func:`~fleet.provider.ovh_client.pacing_key`)
in the broker, so the controller and every worker of the key draw from it, and so do two
rollouts that share the key (OVH counts per key, not per rollout). A 429's ``Retry-After``
pauses it for all of them.

Each take is one Lua script run atomically by Redis, on Redis's own clock (``TIME``), so the
processes' clocks never matter. Libraries for Redis rate limits (``limits``, for instance) count
calls in windows and answer "allowed or not"; fleet needs a token bucket with a burst, a wait
until the next token and a pause for everyone, which this script is. The waits themselves are
slept by tenacity, in naps of at most :data:`NAP` seconds.

What the live view shows: every acquisition waiting now is a member of a sorted set, refreshed
at each nap (a process that died while waiting drops out after :data:`STALE` seconds), so the
controller's heartbeat counts the calls waiting in every process; and the calls and waits of
each run execution (``run id:run token``, set by :func:`for_run` around a host's pipeline) are
summed in a hash the controller reads (:func:`run_usage`).

If Redis does not answer, the process paces alone with its own bucket (as without workers) for
:data:`ALONE_FOR` seconds before it asks again, and says so in its log: the pipelines go on,
and OVH's 429 remains the backstop.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from tenacity import RetryCallState, RetryError, Retrying, retry_if_result, stop_after_attempt

from fleet.provider.base import Pacing
from fleet.provider.ratelimit import MAX_ACQUIRE_ROUNDS, TokenBucket

log = logging.getLogger(__name__)

#: Longest single sleep of a waiting acquisition (it refreshes its place among the waiters).
NAP = 2.0
#: Seconds after which a waiter not refreshed is taken for dead and no longer shown.
STALE = 10.0
#: Seconds a process paces alone after Redis failed to answer, before it asks Redis again.
ALONE_FOR = 30.0
#: The keys outlive any rollout, then go away by themselves.
KEY_TTL = 7 * 86400
#: The run execution whose calls this thread makes (``run id:run token``), if any.
_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("fleet_pacer_run", default=None)

# KEYS: bucket, waiters (by last seen), waiters (since when)[, run usage]. ARGV: rate/s, burst, waiter, slept, ttl.
# Returns the milliseconds to wait (0: a token was taken).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl = tonumber(ARGV[5])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'paused')
local tokens = tonumber(b[1]) or burst
local updated = tonumber(b[2]) or now
local paused = tonumber(b[3]) or 0
local wait = 0
if now < paused then
  wait = paused - now
else
  tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
  if tokens >= 1 - 1e-9 then
    tokens = math.max(0, tokens - 1)
  else
    wait = math.max(0.001, (1 - tokens) / rate)
  end
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'updated', now)
  redis.call('EXPIRE', KEYS[1], ttl)
end
if wait > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[3])
  redis.call('HSETNX', KEYS[3], ARGV[3], now)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  return math.ceil(wait * 1000)
end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
if #KEYS > 3 then
  redis.call('HINCRBY', KEYS[4], 'requests', 1)
  redis.call('HINCRBYFLOAT', KEYS[4], 'waited', ARGV[4])
  redis.call('HSET', KEYS[4], 'per_minute', rate * 60)
  redis.call('EXPIRE', KEYS[4], ttl)
end
return 0
"""

# KEYS: bucket. ARGV: seconds, ttl.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local until_ = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused')) or 0
if until_ > paused then
  redis.call('HSET', KEYS[1], 'paused', until_)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""

# KEYS: waiters (by last seen), waiters (since when). ARGV: stale seconds.
# Returns {count, longest wait in ms}; forgets the waiters not seen for the stale seconds.
_WAITING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
for _, member in ipairs(stale) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local longest = 0
for _, member in ipairs(members) do
  local since = tonumber(redis.call('HGET', KEYS[2], member))
  if since then longest = math.max(longest, now - since) end
end
return {#members, math.floor(longest * 1000)}
"""


def bucket_key(pacing_key: str) -> str:
    return f"fleet:pace:{pacing_key}"


def run_key(run: str) -> str:
    return f"fleet:pace-run:{run}"


@contextmanager
def for_run(run_id: str, run_token: int) -> Iterator[None]:
    """Count the calls this thread makes meanwhile as the run execution's (its usage)."""
    token = _RUN.set(f"{run_id}:{run_token}")
    try:
        yield
    finally:
        _RUN.reset(token)


def run_usage(client: redis.Redis, run_id: str, run_token: int) -> Pacing | None:
    """The calls and waits of every process for this run execution; None before any (or when
    Redis does not answer: the live view shows nothing rather than fail)."""
    try:
        raw: Any = client.hgetall(run_key(f"{run_id}:{run_token}"))
    except redis.RedisError:
        return None
    if not raw:
        return None
    got = {k.decode() if isinstance(k, bytes) else str(k): float(v) for k, v in raw.items()}
    return Pacing(int(got.get("requests", 0)), got.get("waited", 0.0), got.get("per_minute", 0.0))


class RedisBucket:
    """A :class:`~fleet.provider.ratelimit.Pacer` every process of one OVH key shares."""

    def __init__(
        self,
        client: redis.Redis,
        pacing_key: str,
        rate_per_minute: float,
        burst: int,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        # the fallback checks the arguments and paces alone while Redis does not answer
        self.alone = TokenBucket(rate_per_minute, burst, monotonic=monotonic, sleep=sleep)
        self.client, self.key = client, bucket_key(pacing_key)
        self.waiters = [self.key + ":waiting", self.key + ":since"]
        self.burst, self._monotonic, self._sleep = burst, monotonic, sleep
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)
        self._waiting = client.register_script(_WAITING)
        self._ids = itertools.count()
        self._me = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._taken, self._waited = 0, 0.0
        self._alone_until = float("-inf")

    @property
    def per_minute(self) -> float:
        return self.alone.per_minute

    def acquire(self) -> float:
        """Take one token of the shared bucket, sleeping (in naps) until one is available."""
        if self._monotonic() < self._alone_until:
            return self.alone.acquire()
        run = _RUN.get()
        keys = [self.key, *self.waiters] + ([run_key(run)] if run else [])
        waiter = f"{self._me}:{next(self._ids)}"
        slept = 0.0

        def take() -> float:
            args: list[float | str] = [
                self.alone.rate_per_second,
                self.burst,
                waiter,
                slept,
                KEY_TTL,
            ]
            return int(self._take(keys=keys, args=args)) / 1000.0

        def nap(state: RetryCallState) -> float:
            nonlocal slept
            wait = min(NAP, state.outcome.result() if state.outcome else NAP)
            slept += wait
            return wait

        retrying = Retrying(
            retry=retry_if_result(lambda wait: wait > 0),
            wait=nap,
            stop=stop_after_attempt(MAX_ACQUIRE_ROUNDS),
            sleep=self._sleep,
        )
        try:
            retrying(take)
        except RetryError as exc:
            raise RuntimeError(f"no token after {MAX_ACQUIRE_ROUNDS} rounds") from exc
        except redis.RedisError as exc:
            self._alone(exc)
            return slept + self.alone.acquire()
        with self._lock:
            self._taken += 1
            self._waited += slept
        return slept

    def pause(self, seconds: float) -> None:
        """Hold every process's acquisitions for ``seconds``."""
        self.alone.pause(seconds)  # in case Redis goes away meanwhile
        if self._monotonic() < self._alone_until:
            return
        try:
            self._pause(keys=[self.key], args=[seconds, KEY_TTL])
        except redis.RedisError as exc:
            self._alone(exc)

    def waiting(self) -> tuple[int, float]:
        """The acquisitions waiting now in every process of the key, and the longest wait."""
        if self._monotonic() < self._alone_until:
            return self.alone.waiting()
        try:
            count, longest_ms = self._waiting(keys=self.waiters, args=[STALE])
        except redis.RedisError:
            return self.alone.waiting()
        return int(count), int(longest_ms) / 1000.0

    def usage(self) -> Pacing:
        """This process's calls through the shared bucket (and alone, while Redis was away)."""
        with self._lock:
            mine = Pacing(self._taken, self._waited, self.per_minute)
        return mine.plus(self.alone.usage())

    def _alone(self, exc: redis.RedisError) -> None:
        self._alone_until = self._monotonic() + ALONE_FOR
        log.warning(
            "the shared OVH rate limit is out of reach (%s): pacing alone for %gs", exc, ALONE_FOR
        )
