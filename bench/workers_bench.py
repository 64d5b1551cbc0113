"""Hosts through 2 Celery workers versus in-process, on the same sandbox, in the same run.

Starts a sandbox of ``--hosts`` servers (real sshd per server on loopback), a Redis of its own
and two ``fleet worker`` processes (each on all three datacenter queues), then runs R rounds,
interleaved (the round's first mode alternates), of the same rollout:

* ``in-process``: ``fleet rollout PLAN --in-process`` (pipelines in the rollout's thread pool);
* ``workers``: ``fleet rollout PLAN --workers`` (pipelines as Celery tasks on the 2 workers).

Both modes share one store (the workers read the rollout's), and every rollout uses a new plan
variable, so that every step runs on every host. The plan has
``--steps`` steps of ``echo``; batches ``1,100%``; ``--concurrency`` hosts in flight (the
workers run ``--concurrency / 2`` each). Every run must end ``done`` with every host ok.
Prints the wall times (spawn to exit) and their ratio, workers / in-process, per round and the
median; writes them to ``bench/results/workers-<stamp>.json``.

    .tox/tests/bin/python bench/workers_bench.py         # 500 hosts, 3 rounds, 50 at once
    .tox/tests/bin/python bench/workers_bench.py --hosts 150 --rounds 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleet.sandbox.redisserver import RedisServer  # noqa: E402
from fleet.sandbox.sandbox import DATACENTERS, Sandbox  # noqa: E402
from tests.integration.workers_harness import Fleet, wait_for_workers  # noqa: E402

RESULTS = REPO / "bench" / "results"


def plan_text(steps: int, tag: str) -> str:
    lines = ["name: workers-bench", f"vars: {{tag: {tag}}}", "stages:"]
    for i in range(1, steps + 1):
        lines += [f"  - name: s{i}", "    steps:", f"      - name: e{i}"]
        lines += [f"        apply: echo {{{{ tag }}}}-{i}"]
    return "\n".join(lines) + "\n"


def one_run(fleet: Fleet, work: Path, mode: str, args: argparse.Namespace) -> float:
    tag = "b" + secrets.token_hex(4)
    plan = work / f"{tag}.yaml"
    plan.write_text(plan_text(args.steps, tag))
    flags = ["--batches", "1,100%", "--concurrency", str(args.concurrency), "-o", "json"]
    started = time.monotonic()
    proc = fleet("rollout", str(plan), f"--{mode}", *flags, timeout=3600)
    wall = time.monotonic() - started
    summary = proc.stderr.strip().splitlines()
    done = [x for x in summary if x.startswith("run r") and f"ok {args.hosts}," in x]
    if proc.returncode != 0 or not done:
        raise SystemExit(f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    box = Sandbox(work / "sandbox", servers=args.hosts, seed=5)
    box.start()
    try:
        with RedisServer(work / "redis") as redis:
            settings = {"FLEET_WORKERS_BROKER": redis.url}
            fleet = Fleet(work / "state", box.config_path, settings)
            try:
                queues = ",".join(DATACENTERS)
                names = [f"bench{i}@{secrets.token_hex(2)}" for i in range(2)]
                for i, name in enumerate(names):
                    per = str(max(1, args.concurrency // 2))
                    fleet.worker(queues, name, int(per), work / f"worker{i}.log")
                wait_for_workers(fleet, names)
                return rounds(fleet, work, args)
            finally:
                fleet.stop_all()
    finally:
        box.stop()


def rounds(fleet: Fleet, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = ("in-process", "workers") if r % 2 == 0 else ("workers", "in-process")
        load = os.getloadavg()[0]  # a gauge of other work on the machine meanwhile
        walls = {mode: one_run(fleet, work, mode, args) for mode in order}
        walls["ratio"] = walls["workers"] / walls["in-process"]
        walls["load_before"], walls["load_after"] = load, os.getloadavg()[0]
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in walls.items()))
        out.append(walls)
    median = {k: statistics.median(w[k] for w in out) for k in ("in-process", "workers")}
    return {"rounds": out, "median": median, "ratio": median["workers"] / median["in-process"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-workers-bench-") as tmp:
        result = bench(args, Path(tmp))
    result["args"] = vars(args)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"workers-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["median"]
    print(
        f"| hosts | in-process s | 2 workers s | ratio |\n|---|---|---|---|\n"
        f"| {args.hosts} | {m['in-process']:.2f} | {m['workers']:.2f} | {result['ratio']:.2f} |"
    )


if __name__ == "__main__":
    main()
