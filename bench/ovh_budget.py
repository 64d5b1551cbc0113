"""OVH API calls per host of a rescue round trip, and its wall time under the rate limit.

Starts a fleet sandbox in this process (the fake OVH API, one real sshd per server, reboots
lasting about a second), then runs one ``fleet rollout`` of a rescue round trip (rescue, a
command proving the rescue system, back to disk) over every host, in batches of ``--batch``
hosts at once, with the OVH rate limit at ``--rate`` calls a minute (60: OVH's fair use).
Calls are counted by the fake API itself, per server and route.

Prints calls per host (max, mean, by route), the calls charged to no server, the wall time,
and the floor that the rate limit sets for the calls made (``(calls - burst) / rate``): the
ratio wall / floor says how much of the wall time the rate limit explains. For comparison, the
floor the same limit would set at 44 calls a host (what a round trip cost before the budget:
task polls every 5 s) is printed beside it. Writes the figures to ``bench/results/``.

    .tox/bench/bin/python bench/ovh_budget.py                       # 200 hosts, batches of 50
    .tox/bench/bin/python bench/ovh_budget.py --hosts 20 --batch 5  # a shorter variant
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
BURST = 5  # the provider's token bucket
CALLS_BEFORE = 44  # a round trip's calls a host before the budget (task polls every 5 s)

PLAN = """
name: ovh-budget
stages:
  - name: rescue
    kind: rescue
  - name: in-rescue
    steps:
      - name: prove rescue
        apply: hostname | grep -q '^rescue'
  - name: disk
    kind: disk
"""


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from fleet.sandbox.sandbox import Sandbox

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rate", type=float, default=60.0, help="OVH calls a minute")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-ovh-budget-") as tmp:
        work = Path(tmp)
        box = Sandbox(work / "sandbox", servers=args.hosts)
        box.start()
        try:
            assert box.api is not None
            plan = work / "plan.yaml"
            plan.write_text(PLAN)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
            env.update(
                FLEET_CONFIG=str(box.config_path),
                FLEET_STATE=str(work / "state"),
                FLEET_OVH_RATE_LIMIT=str(args.rate),
            )
            command = [sys.executable, "-m", "fleet", "rollout", str(plan), "--limit", "all"]
            command += ["--batches", str(args.batch), "--concurrency", str(args.batch)]
            before = box.api.calls.snapshot()
            start = time.monotonic()
            proc = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=args.timeout
            )
            wall = time.monotonic() - start
            calls = box.api.calls.snapshot().since(before)
        finally:
            box.stop()
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        return 1
    figures = summarise(calls, wall, args)
    print_table(figures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"ovh-budget-{stamp}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(REPO)}")
    return 0


def summarise(calls: Any, wall: float, args: argparse.Namespace) -> dict[str, Any]:
    hosts = {s: n for s, n in calls.per_server.items() if s != "-"}
    routes: dict[str, int] = {}
    for (server, route), n in calls.per_route.items():
        if server != "-":
            routes[route] = routes.get(route, 0) + n
    total = calls.total
    return {
        "hosts": len(hosts),
        "batch": args.batch,
        "rate_per_minute": args.rate,
        "calls_total": total,
        "calls_no_server": calls.per_server.get("-", 0),
        "calls_per_host_max": max(hosts.values()),
        "calls_per_host_mean": statistics.fmean(hosts.values()),
        "routes_per_host": {r: n / len(hosts) for r, n in sorted(routes.items())},
        "failed_answers": sum(calls.failed.values()),
        "wall_seconds": wall,
        "floor_seconds": floor(total, args.rate),
        "floor_seconds_at_44_a_host": floor(CALLS_BEFORE * len(hosts), args.rate),
    }


def floor(calls: int, rate: float) -> float:
    """The least wall time ``calls`` take under a token bucket of ``rate``/min and its burst."""
    return max(0, calls - BURST) * 60.0 / rate


def print_table(f: dict[str, Any]) -> None:
    print("| hosts | batch | rate/min | calls/host max | mean | wall | floor | wall/floor |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {f['hosts']} | {f['batch']} | {f['rate_per_minute']:g} | {f['calls_per_host_max']} "
        f"| {f['calls_per_host_mean']:.2f} | {f['wall_seconds']:.0f} s "
        f"| {f['floor_seconds']:.0f} s | {f['wall_seconds'] / max(f['floor_seconds'], 1):.2f}x |"
    )
    print(f"\ncalls charged to no server (/auth/time...): {f['calls_no_server']}")
    print(f"failed answers: {f['failed_answers']}")
    print(f"floor at {CALLS_BEFORE} calls a host: {f['floor_seconds_at_44_a_host']:.0f} s")
    print("calls a host, by route:")
    for route, n in f["routes_per_host"].items():
        print(f"  {n:5.2f}  {route}")


if __name__ == "__main__":
    sys.exit(main())
