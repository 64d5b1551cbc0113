"""The OVH rate limit shared by every process of a consumer key, on a real Redis, between real
processes calling the fake OVH API, checked with the fake's own record of when calls came.

The guard: across processes, no window of the fake's log holds more calls than the limit lets
through (``burst + rate * window``). The case that should slip past it: the same processes,
each pacing alone with a bucket of its own (what every worker did before), exceed it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from fleet.cli.app import App
from fleet.provider.ovh_client import pacing_key
from fleet.sandbox.ovh_calls import Call
from fleet.sandbox.ovh_chaos import ChaosRule
from fleet.sandbox.redisserver import RedisServer, free_port
from fleet.sandbox.sandbox import Sandbox
from fleet.workers import Broker
from fleet.workers.pacer import RedisBucket, bucket_key, for_run, run_usage
from tests.integration.workers_harness import REPO

pytestmark = pytest.mark.integration

RATE = 240.0  # a minute: 4 calls a second
BURST = 5  # fleet's bucket size (DEFAULT_BURST)
PROCESSES = 3
CALLS = 14  # each
#: Calls a window may hold beyond the limit: a call paced just before a window opens may
#: reach the fake just inside it.
SLACK = 2
AUTH_TIME = "GET /auth/time"  # unsigned, no consumer key: fetched once per process, unpaced


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of this module's own: the fake OVH API and a few hosts (no SSH here)."""
    with Sandbox(tmp_path_factory.mktemp("psandbox"), servers=PROCESSES, seed=5) as box:
        yield box


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url)
    made.flushdb()  # each test starts with a full bucket
    try:
        yield made
    finally:
        made.close()


def most_in_window(times: list[float], window: float) -> int:
    """The most calls any ``window`` seconds of ``times`` hold (a sliding window)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def allowed(window: float) -> int:
    return int(BURST + RATE / 60.0 * window) + SLACK


def run_clients(
    box: Sandbox, broker: str | None, servers: list[str], calls: int = CALLS
) -> tuple[list[Call], list[dict[str, float]]]:
    """Start one pacing client per server, all at once; the calls the fake logged meanwhile
    (but ``/auth/time``) and each client's usage."""
    assert box.api is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
    env.update(FLEET_CONFIG=str(box.config_path), FLEET_OVH_RATE_LIMIT=str(RATE))
    since = time.monotonic()
    start = time.time() + 5.0  # every process imported and ready by then
    procs = []
    for server in servers:
        cmd = [sys.executable, "-m", "tests.integration.pacing_client", "--server", server]
        cmd += ["--calls", str(calls), "--start", str(start)]
        cmd += ["--broker", broker] if broker else []
        procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True))
    usages = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0
            usages.append(json.loads(out.splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = [c for c in box.api.calls.log(since) if c.route != AUTH_TIME]
    return log, usages


def services(box: Sandbox) -> list[str]:
    """The OVH service names of the first servers, one per process."""
    return [s.service for s in box.servers[:PROCESSES]]


def test_processes_sharing_the_bucket_stay_under_the_limit_together(
    sandbox: Sandbox, client: redis.Redis, redis_url: str
) -> None:
    log, usages = run_clients(sandbox, redis_url, services(sandbox))
    assert len(log) == PROCESSES * CALLS
    assert {c.server for c in log} == set(services(sandbox))
    for window in (1.0, 2.0, 5.0):
        assert most_in_window([c.at for c in log], window) <= allowed(window), window
    # the processes waited for each other, and each knows it
    assert sum(u["requests"] for u in usages) == PROCESSES * CALLS
    assert sum(u["rate_limit_wait"] for u in usages) > 0


def test_processes_pacing_alone_exceed_the_limit_together(sandbox: Sandbox) -> None:
    log, _ = run_clients(sandbox, None, services(sandbox))
    assert len(log) == PROCESSES * CALLS
    over = [w for w in (1.0, 2.0) if most_in_window([c.at for c in log], w) > allowed(w)]
    assert over, f"three separate buckets should let through three times the rate: {log}"


def test_a_retry_after_seen_by_one_process_pauses_the_others(
    sandbox: Sandbox, client: redis.Redis, redis_url: str
) -> None:
    assert sandbox.api is not None
    pause, names = 4, services(sandbox)
    route = f"GET /dedicated/server/{names[1]}/task"
    sandbox.api.chaos.add_rule(ChaosRule(kind="429", route=route, retry_after=pause, count=1))
    try:  # the 429 answers that process's first call; the others have calls left after it
        log, _ = run_clients(sandbox, redis_url, names, calls=16)
    finally:
        sandbox.api.chaos.reset()
    refused = [c for c in log if c.status == 429]
    assert len(refused) == 1 and refused[0].server == names[1]
    after = [c.at - refused[0].at for c in log if c.at > refused[0].at]
    # calls paced before the pause was set may land just after the 429; then silence
    assert not [dt for dt in after if 1.0 < dt < pause - 1.0], after
    resumed = {c.server for c in log if c.at > refused[0].at + pause - 1.0}
    assert names[1] in resumed and len(resumed) >= 2, "another process was held, then went on"


def test_the_controller_heartbeat_tells_the_calls_waiting_in_other_processes(
    sandbox: Sandbox, client: redis.Redis, redis_url: str
) -> None:
    """What the controller's heartbeat (and ``Progress`` lines) print comes from the shared
    bucket: a call waiting in a worker process shows in the controller."""
    controller = App(flags={}, config_file=str(sandbox.config_path), debug=False)
    broker = Broker(redis_url, 60)
    try:
        assert controller.pacing() is None
        controller.share_pacing(broker.pacer)
        controller.pacer().pause(120.0)  # as a 429 seen by the controller would
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
        env.update(FLEET_CONFIG=str(sandbox.config_path))
        cmd = [sys.executable, "-m", "tests.integration.pacing_client", "--broker", redis_url]
        cmd += ["--server", sandbox.servers[0].service, "--calls", "1"]
        worker = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        lines = []
        try:
            deadline = time.monotonic() + 60
            while worker.poll() is None and time.monotonic() < deadline:
                lines.append(controller.pacing())
                if lines[-1]:  # seen: lift the pause, the worker's call goes
                    client.hdel(bucket_key(pacing_key(controller.ovh_client())), "paused")
                time.sleep(0.2)
            out, _ = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        assert worker.returncode == 0
        assert json.loads(out)["rate_limit_wait"] > 1.0
        told = [x for x in lines if x]
        assert told, lines
        assert told[-1].startswith("OVH rate limit (6000 requests/min, shared by every process")
        assert "1 call(s) waiting, the longest for" in told[-1]
        assert controller.pacing() is None  # nobody waits any more
    finally:
        broker.close()
        controller.close()


def test_a_bucket_paused_by_one_process_holds_another_and_shows_its_waiters(
    client: redis.Redis,
) -> None:
    """Two buckets of one key in this process stand for two processes; a third reads."""
    naps: list[float] = []
    seen: list[tuple[int, float]] = []
    watcher = RedisBucket(client, "k", 60.0, 1, monotonic=time.monotonic, sleep=time.sleep)

    def nap(seconds: float) -> None:
        naps.append(seconds)
        seen.append(watcher.waiting())
        time.sleep(seconds)

    one = RedisBucket(client, "k", 60.0, 1, monotonic=time.monotonic, sleep=time.sleep)
    other = RedisBucket(client, "k", 60.0, 1, monotonic=time.monotonic, sleep=nap)
    one.pause(3.0)
    with for_run("r1", 7):
        slept = other.acquire()
    assert slept >= 2.5
    assert naps and max(naps) <= 2.0  # naps, each refreshing its place among the waiters
    assert seen[0][0] == 1 and seen[-1][0] == 1 and seen[-1][1] >= 1.0
    assert watcher.waiting() == (0, 0.0)
    usage = run_usage(client, "r1", 7)
    assert usage is not None and usage.requests == 1 and usage.waited == pytest.approx(slept)
    assert run_usage(client, "r1", 8) is None  # another execution of the run counts apart


def test_threads_of_many_buckets_take_each_token_once(client: redis.Redis) -> None:
    """Tokens are never handed out twice: 6 buckets (processes), 4 threads each, a burst of 10
    and a slow refill: exactly 10 takes succeed without waiting."""
    buckets = [
        RedisBucket(client, "t", 6.0, 10, monotonic=time.monotonic, sleep=_refuse) for _ in range(6)
    ]
    got: list[str] = []
    lock = threading.Lock()

    def take(bucket: RedisBucket) -> None:
        try:
            bucket.acquire()
            outcome = "taken"
        except _Waited:
            outcome = "waited"
        with lock:
            got.append(outcome)

    threads = [threading.Thread(target=take, args=(b,)) for b in buckets for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert got.count("taken") == 10 and got.count("waited") == 14


class _Waited(Exception):
    pass


def _refuse(seconds: float) -> None:
    raise _Waited(seconds)


def test_without_redis_a_process_paces_alone() -> None:
    gone = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    bucket = RedisBucket(gone, "k", 60.0, 2, monotonic=time.monotonic, sleep=_refuse)
    assert [bucket.acquire(), bucket.acquire()] == [0.0, 0.0]
    with pytest.raises(_Waited):  # its own bucket: burst 2, then a wait
        bucket.acquire()
    bucket.pause(0.01)
    assert bucket.waiting() == (0, 0.0)
    assert bucket.usage().requests == 3
