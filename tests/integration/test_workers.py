"""Rollouts through real Celery workers: a Redis of the test's own, ``fleet worker`` processes
on three datacenter queues, a sandbox of its own (real sshd hosts, the fake OVH API).

One worker is killed with SIGKILL mid-rollout: its hosts are delivered again to the others,
which read the journal first; the rollout completes and no counted step runs twice on any host
(witness files on the hosts say so). The failure budget and halts behave as in-process.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.ovh_api import TaskTimings
from fleet.sandbox.redisserver import RedisServer
from fleet.sandbox.sandbox import DATACENTERS, Sandbox
from tests.integration.workers_harness import Fleet, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Hosts of the workers' own sandbox (FLEET_TEST_WORKER_HOSTS to change it): 200, as the issue
#: asks; the module took 50 s with 200 and 61 s with 120 on 2 cores (the sandbox starts in seconds).
HOSTS = int(os.environ.get("FLEET_TEST_WORKER_HOSTS", "200"))
#: Seconds: short, so that a dead worker's hosts come back within the test.
VISIBILITY = 6
LEASE_TTL = 3

WITNESS_PLAN = """
name: workers-witness
vars: {{tid: {tid}}}
stages:
  - name: prepare
    steps:
      - name: dir
        check: test -d "$HOME"/{{{{ tid }}}}
        apply: mkdir -p "$HOME"/{{{{ tid }}}}
  - name: work
    steps:
      - name: count
        apply: echo x >> "$HOME"/{{{{ tid }}}}/count && sleep 0.4
      - name: wipe
        destructive: true
        check: test -e "$HOME"/{{{{ tid }}}}/wiped
        apply: echo x >> "$HOME"/{{{{ tid }}}}/wipe && touch "$HOME"/{{{{ tid }}}}/wiped && sleep 0.2
  - name: verify
    steps:
      - name: verify
        apply: test "$(wc -l < "$HOME"/{{{{ tid }}}}/count)" -ge 1
"""

#: Fails on the hosts whose number is odd: in a first batch of 5 (srv-001..005), 3 fail.
FAILING_PLAN = """
name: workers-failing
stages:
  - name: only
    steps:
      - name: odd
        apply: case {{ host.name }} in *[13579]) exit 3;; esac
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    timings = TaskTimings(reboot_init=0.1, reboot_todo=0.1, reboot_doing=0.3, tick=0.02)
    sandbox = Sandbox(tmp_path_factory.mktemp("wsandbox"), servers=HOSTS, timings=timings, seed=11)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def fleet(box: Sandbox, redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    settings = {
        "FLEET_WORKERS_BROKER": redis_url,
        "FLEET_WORKERS_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "FLEET_ROLLOUT_LEASE_TTL": str(LEASE_TTL),
        "FLEET_ROLLOUT_INFRA_RETRY_DELAY": "0.2",
    }
    runner = Fleet(tmp_path / "state", box.config_path, settings)
    try:
        yield runner
    finally:
        runner.stop_all()


def start_workers(fleet: Fleet, tmp_path: Path, concurrency: int = 8) -> list[str]:
    """Three workers, each on two of the three datacenter queues: a queue keeps a consumer
    when any one worker dies."""
    names = []
    for i, dc in enumerate(DATACENTERS):
        other = DATACENTERS[(i + 1) % len(DATACENTERS)]
        name = f"w{i}-{secrets.token_hex(2)}@test"
        fleet.worker(f"{dc},{other}", name, concurrency, tmp_path / f"worker{i}.log")
        names.append(name)
    wait_for_workers(fleet, names)
    return names


def witness_counts(box: Sandbox, tid: str, what: str) -> dict[str, int]:
    out = {}
    for i in range(1, HOSTS + 1):
        name = f"srv-{i:03d}"
        path = box.hosts.home_dir(name, "disk") / tid / what
        out[name] = len(path.read_text().splitlines()) if path.exists() else 0
    return out


def status(fleet: Fleet, run_id: str) -> dict[str, object]:
    proc = fleet("status", run_id, "--json")
    return dict(json.loads(proc.stdout))


def test_a_worker_killed_mid_rollout_loses_nothing_and_repeats_nothing(
    fleet: Fleet, box: Sandbox, tmp_path: Path
) -> None:
    start_workers(fleet, tmp_path)
    tid = "w" + secrets.token_hex(4)
    plan = tmp_path / "plan.yaml"
    plan.write_text(WITNESS_PLAN.format(tid=tid))
    controller = fleet.popen(
        "rollout", str(plan), "--workers", "--batches", "3,100%", "--concurrency", "24",
        "--confirm", str(len(box.servers)), log=tmp_path / "controller.log",
    )  # fmt: skip
    victim = fleet.procs[0]
    victim_name = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and controller.poll() is None:  # kill once mid-rollout
        events = fleet.events()
        ended = {e.host for e in events if e.kind == "host.end"}
        marks = [e for e in events if e.kind == "host.worker" and e.host not in ended]
        running = [e for e in marks if str(e.data.get("worker", "")).startswith("w0-")]
        if len(ended) >= HOSTS // 4 and running:
            victim_name = running[0].data["worker"]
            os.kill(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    assert victim_name, "the rollout ended before a worker could be killed mid-host"
    in_flight = {e.host for e in running}
    controller.wait(timeout=240)
    log = (tmp_path / "controller.log").read_text()
    assert controller.returncode == 0, log[-3000:]
    events = fleet.events()
    run_id = events[0].run_id
    ok = {e.host for e in events if e.kind == "host.end" and e.outcome == "ok"}
    assert len(ok) == HOSTS, log[-3000:]
    # the killed worker's hosts were delivered again and finished by another worker
    again = {e.host for e in events if e.kind == "host.worker" and e.data.get("again")}
    assert again, f"no task of the killed worker came back (in flight: {sorted(in_flight)})"
    by_victim = {
        e.host for e in events if e.kind == "host.worker" and e.data["worker"] == victim_name
    }
    assert again <= by_victim
    # no counted step ran twice (nor never) on any host
    assert set(witness_counts(box, tid, "count").values()) == {1}
    assert set(witness_counts(box, tid, "wipe").values()) == {1}
    # status reads the journal as for an in-process run
    st = status(fleet, run_id)
    assert st["state"] == "done", st


def test_the_budget_halts_as_in_process(fleet: Fleet, tmp_path: Path) -> None:
    plan = tmp_path / "failing.yaml"
    plan.write_text(FAILING_PLAN)
    limit = ",".join(f"srv-{i:03d}" for i in range(1, 10))
    args = ["--limit", limit, "--batches", "5,100%", "--max-failures", "2"]
    start_workers(fleet, tmp_path, concurrency=4)
    on_workers = fleet("rollout", str(plan), "--workers", *args)
    # the same rollout in-process, on a store of its own (the first quarantined its failures)
    alone = Fleet(tmp_path / "in-process", fleet.config, fleet.settings)
    in_process = alone("rollout", str(plan), "--in-process", *args)
    assert in_process.returncode == on_workers.returncode == 2, on_workers.stderr
    summaries = [p.stderr.splitlines() for p in (in_process, on_workers)]
    lines = [[x for x in s if x.startswith("run r")][-1].split(": ", 1)[1] for s in summaries]
    assert lines[0] == lines[1]
    assert "halted; ok 2, failed 3, skipped 0, not finished 4" in lines[1]
    assert "failure budget spent" in lines[1]


def test_a_global_halt_stops_workers_and_resume_finishes(
    fleet: Fleet, box: Sandbox, tmp_path: Path
) -> None:
    start_workers(fleet, tmp_path, concurrency=4)
    tid = "h" + secrets.token_hex(4)
    plan = tmp_path / "plan.yaml"
    plan.write_text(WITNESS_PLAN.format(tid=tid))
    limit = ",".join(f"srv-{i:03d}" for i in range(1, 30))
    controller = fleet.popen(
        "rollout", str(plan), "--workers", "--limit", limit, "--batches", "2,100%",
        "--concurrency", "6", "--confirm", limit, log=tmp_path / "controller.log",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(e.kind == "host.end" for e in fleet.events()) >= 3:
            break
        time.sleep(0.1)
    assert fleet("halt", "--reason", "test").returncode == 0
    assert controller.wait(timeout=120) == 2, (tmp_path / "controller.log").read_text()[-2000:]
    events = fleet.events()
    run_id = events[0].run_id
    assert sum(e.kind == "host.end" and e.outcome == "ok" for e in events) < 29
    assert fleet("unhalt").returncode == 0
    resumed = fleet("resume", run_id, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    hosts = [f"srv-{i:03d}" for i in range(1, 30)]
    counts = witness_counts(box, tid, "count")
    assert {counts[h] for h in hosts} == {1}
