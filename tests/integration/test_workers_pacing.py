"""A rescue round trip through three real ``fleet worker`` processes under one OVH rate limit.

Each worker has its own provider; together they must stay under ``ovh.rate_limit``, which the
fake OVH API's own log of when calls came says (a sliding window, as in
:mod:`tests.integration.test_shared_pacing`, where the same check catches processes pacing
alone). The controller, on a terminal, shows the workers' calls and rate limit waits in its live
view as they grow, and journals them at the run's end: as many calls as the fake counted.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.redisserver import RedisServer
from fleet.sandbox.sandbox import DATACENTERS, Sandbox
from tests.integration.conftest import QUICK_TIMINGS
from tests.integration.test_live_view import run_in_pty
from tests.integration.test_rescue import ROUND_TRIP
from tests.integration.test_shared_pacing import AUTH_TIME, BURST, SLACK, most_in_window
from tests.integration.test_workers import LEASE_TTL, VISIBILITY
from tests.integration.workers_harness import Fleet, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = 9  # three a datacenter
RATE = 300.0  # a minute: 5 calls a second for the three workers together


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("psandbox")
    with Sandbox(directory, servers=HOSTS, timings=QUICK_TIMINGS, seed=13) as sandbox:
        yield sandbox


@pytest.fixture
def fleet(box: Sandbox, tmp_path: Path) -> Iterator[Fleet]:
    with RedisServer(tmp_path / "redis") as server:
        settings = {
            "FLEET_WORKERS_BROKER": server.url,
            "FLEET_WORKERS_VISIBILITY_TIMEOUT": str(VISIBILITY),
            "FLEET_ROLLOUT_LEASE_TTL": str(LEASE_TTL),
            "FLEET_OVH_RATE_LIMIT": str(RATE),
        }
        runner = Fleet(tmp_path / "state", box.config_path, settings)
        try:
            yield runner
        finally:
            runner.stop_all()


def test_workers_share_one_rate_limit_and_the_live_view_shows_their_calls(
    fleet: Fleet, box: Sandbox, tmp_path: Path
) -> None:
    assert box.api is not None
    names = []
    for i in range(3):  # each worker on every queue: all three call OVH at once
        name = f"p{i}-{secrets.token_hex(2)}@test"
        fleet.worker(",".join(DATACENTERS), name, 4, tmp_path / f"worker{i}.log")
        names.append(name)
    wait_for_workers(fleet, names)
    plan = tmp_path / "p.yaml"
    plan.write_text(ROUND_TRIP.format(tid="p" + secrets.token_hex(4)))
    since = time.monotonic()
    code, screen = run_in_pty(
        fleet,  # type: ignore[arg-type]
        ["rollout", str(plan), "--workers", "--batches", "100%", "--concurrency", str(HOSTS)],
        timeout=300,
    )
    assert code == 0, screen.text()
    events = fleet.events()
    assert sum(e.kind == "host.end" and e.outcome == "ok" for e in events) == HOSTS
    workers = {str(e.data["worker"]) for e in events if e.kind == "host.worker"}
    assert len(workers) >= 2, f"the hosts ran on several workers: {workers}"
    # together, the workers never went beyond the limit
    log = [c for c in box.api.calls.log(since) if c.route != AUTH_TIME]
    assert len(log) >= HOSTS * 10
    for window in (1.0, 3.0, 10.0):
        allowed = int(BURST + RATE / 60.0 * window) + SLACK
        assert most_in_window([c.at for c in log], window) <= allowed, (window, log)
    # the run's end records every call the workers made, and their waits
    end = next(e for e in events if e.kind == "run.end")
    ovh = end.data["ovh"]
    assert ovh["requests"] == len(log) and ovh["per_minute"] == RATE
    assert ovh["rate_limit_wait"] > 0
    # the live view showed the workers' calls as they grew
    shown = sorted(
        {int(m.group(1)) for f in screen.frames for m in re.finditer(r"OVH API: (\d+) calls", f)}
    )
    assert len(shown) >= 3 and shown[0] < shown[-1] <= len(log), shown
