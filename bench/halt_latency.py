"""How soon a rollout in another process hears `fleet halt`, on each store backend.

For each backend, R trials: a waiter process opens the store and blocks in ``wait_halt`` (what a
rollout's halt watch does); the bench process opens its own store, sets the halt, and the waiter
reports when ``wait_halt`` returned. Both read CLOCK_MONOTONIC, which one machine shares across
processes, so the latency is the difference. The halt is cleared between trials.

PostgreSQL is a throwaway server started here (``tests/pgserver.py``: Debian's binaries, a
temporary directory, loopback), stopped at the end. It prints a markdown table of median, p90 and
worst latency per backend, as ratios to the one-second goal and to SQLite's polling (the floor
fleet had before LISTEN/NOTIFY), and writes the trials to ``bench/results/halt-<stamp>.json``.

    .tox/tests/bin/python bench/halt_latency.py --trials 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleet.store import migrate_store, open_store  # noqa: E402
from tests import pgserver  # noqa: E402

GOAL = 1.0  # seconds: a halt is heard within a second

WAITER = textwrap.dedent(
    """
    import sys, time
    from fleet.store import open_store
    url, password, trials = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
    store = open_store(url, password_file=password)
    for _ in range(trials):
        while store.halt_state() is not None:  # the bench clears it between trials
            time.sleep(0.01)
        print("ready", flush=True)
        state = store.wait_halt(60)
        print("heard" if state else "timeout", time.monotonic(), flush=True)
        sys.stdin.readline()  # the bench cleared the halt
    store.close()
    """
)


def trials(url: str, password: str | None, count: int) -> list[float]:
    """Latencies (s) of ``count`` halts set here and heard by a waiter process."""
    store = open_store(url, password_file=password)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", WAITER, url, password or "", str(count)]
    waiter = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert waiter.stdin is not None and waiter.stdout is not None
    latencies = []
    try:
        for _ in range(count):
            assert waiter.stdout.readline().strip() == "ready"
            time.sleep(random.uniform(0.3, 0.8))  # blocked in wait_halt, at any polling phase
            sent = time.monotonic()
            store.set_halt("bench", "latency trial")
            word, heard = waiter.stdout.readline().split()
            assert word == "heard", word
            latencies.append(float(heard) - sent)
            store.clear_halt("bench")
            waiter.stdin.write("\n")
            waiter.stdin.flush()
        waiter.wait(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
        store.close()
    return latencies


def summary(name: str, values: list[float], floor: float | None) -> str:
    ordered = sorted(values)
    median = statistics.median(ordered)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    worst = ordered[-1]
    versus = f"{median / floor:.2f}x" if floor else "1.00x"
    return (
        f"| {name} | {len(values)} | {median * 1000:.1f} | {p90 * 1000:.1f} | {worst * 1000:.1f} |"
        f" {worst / GOAL:.2f}x | {versus} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    count = parser.parse_args().trials
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-halt-bench-") as tmp:
        results["sqlite"] = trials(str(Path(tmp) / "fleet.db"), None, count)
    with pgserver.running() as server:
        if server is None:
            print("PostgreSQL is not installed: run scripts/bootstrap.sh", file=sys.stderr)
            return 1
        url = server.database()
        password = str(server.password_file)
        migrate_store(url, password_file=password)
        results["postgresql"] = trials(url, password, count)
    floor = statistics.median(results["sqlite"])
    print("| store | trials | median ms | p90 ms | worst ms | worst / 1 s goal | median / SQLite |")
    print("|---|---|---|---|---|---|---|")
    print(summary("sqlite (polling every 0.25 s)", results["sqlite"], None))
    print(summary("postgresql (LISTEN/NOTIFY)", results["postgresql"], floor))
    out = REPO / "bench" / "results" / f"halt-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"goal_s": GOAL, "latencies_s": results}, indent=2))
    print(f"\ntrials written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
