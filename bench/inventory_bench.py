"""Inventory loading against the YAML parser's floor, in one run.

The floor is a plain ``yaml.load(text, Loader=yaml.CSafeLoader)`` of the same file (CPU of that
call, in a fresh process). Measured, each in its own fresh process, rounds interleaved:

- ``api``: ``fleet.inventory.load_inventory([path])`` (CPU of the call: read, parse, precedence,
  host records);
- ``cli``: ``python -m fleet -i PATH inventory list --json > /dev/null``, from process start to
  exit (CPU of the process: interpreter start, imports, load, JSON out; and wall);
- ``floor-nogc``: the floor with Python's cyclic garbage collector paused, for reference: most
  of the floor's time is the collector walking PyYAML's growing node tree.

Targets: api within 1.2x of the floor, cli within 1.5x, and 40,000 hosts at most 2.1x the cost
of 20,000. Usage::

    .tox/tests/bin/python bench/inventory_bench.py             # 20,000 and 40,000 hosts, 5 rounds
    .tox/tests/bin/python bench/inventory_bench.py --rounds 9 --hosts 20000

The generated inventories (about 430 groups: 10 datacenters of 42 racks) are written to a
temporary directory; results go to ``bench/results/inventory-<stamp>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATACENTERS = ("gra1", "gra2", "gra3", "rbx5", "rbx8", "sbg3", "sbg5", "bhs1", "bhs6", "waw1")
RACKS = 42

_TIMED = """
import sys, time, gc
path, what = sys.argv[1], sys.argv[2]
if what == "api":
    from fleet.inventory import load_inventory
    start = time.process_time()
    inventory = load_inventory([path])
    assert inventory.hosts
else:
    import yaml
    text = open(path, encoding="utf-8").read()
    if what == "floor-nogc":
        gc.disable()
    start = time.process_time()
    data = yaml.load(text, Loader=yaml.CSafeLoader)
    assert data
print(time.process_time() - start)
"""


def write_inventory(path: Path, hosts: int) -> None:
    """An OVH-like fleet: datacenters of racks, each host with its address, service and rack."""
    per_rack = -(-hosts // (len(DATACENTERS) * RACKS))
    lines = ["all:", "  vars:", "    ansible_user: root", "    fleet: {labels: {env: prod}}"]
    lines.append("  children:")
    n = 0
    for dc in DATACENTERS:
        lines += [f"    {dc}:", "      vars:", f"        fleet: {{datacenter: {dc}}}"]
        lines.append("      children:")
        for rack in range(RACKS):
            lines += [f"        {dc}_r{rack:02d}:", "          hosts:"]
            for _ in range(per_rack):
                if n >= hosts:
                    break
                n += 1
                ip = f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"
                lines += [
                    f"            srv-{n:06d}:",
                    f"              ansible_host: {ip}",
                    f"              fleet: {{ovh_service: ns{n:06d}.ip-10-0-0.eu, rack: R{rack:02d}}}",
                    "              hdd_mount: /srv/data",
                ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed(what: str, path: Path) -> dict[str, float]:
    """CPU seconds of one measured step, in a fresh process."""
    if what == "cli":
        start = time.perf_counter()
        with open(os.devnull, "w") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fleet", "-i", str(path), "inventory", "list", "--json"],
                stdout=sink,
                env=_env(),
                cwd=REPO,
            )
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"fleet inventory list failed on {path} (status {status})")
        return {"cpu": usage.ru_utime + usage.ru_stime, "wall": wall}
    out = subprocess.run(
        [sys.executable, "-c", _TIMED, str(path), what],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
        cwd=REPO,
    )
    return {"cpu": float(out.stdout.strip())}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["FLEET_STATE"] = tempfile.mkdtemp(prefix="fleet-bench-state-")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=20_000, help="the base size (and twice it)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    steps = ("floor", "floor-nogc", "api", "cli")
    sizes = (args.hosts, 2 * args.hosts)
    # byte-compiled modules, as an installed fleet has them (a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile fleet's sources at every start)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "fleet")], check=True)
    with tempfile.TemporaryDirectory(prefix="fleet-inventory-bench-") as tmp:
        files = {size: Path(tmp) / f"hosts-{size}.yml" for size in sizes}
        for size, path in files.items():
            write_inventory(path, size)
        timed("api", files[sizes[0]])  # warm the page cache and the .pyc files
        runs: dict[str, list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            order = steps if round_ % 2 == 0 else tuple(reversed(steps))
            for size in sizes:
                for step in order:
                    runs.setdefault(f"{step}@{size}", []).append(timed(step, files[size]))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    report(runs, sizes, args)


def _median(runs: list[dict[str, float]], key: str = "cpu") -> float:
    return statistics.median(r[key] for r in runs)


def report(
    runs: dict[str, list[dict[str, float]]], sizes: tuple[int, int], args: argparse.Namespace
) -> None:
    small, large = sizes
    cpu = {name: _median(values) for name, values in runs.items()}
    print(f"\n## Inventory loading, medians of {args.rounds} rounds (CPU seconds)\n")
    print("| hosts | floor | floor, GC paused | fleet API | fleet CLI (wall) |")
    print("|---|---|---|---|---|")
    for size in sizes:
        wall = _median(runs[f"cli@{size}"], "wall")
        print(
            f"| {size} | {cpu[f'floor@{size}']:.3f} | {cpu[f'floor-nogc@{size}']:.3f} | "
            f"{cpu[f'api@{size}']:.3f} | {cpu[f'cli@{size}']:.3f} ({wall:.3f}) |"
        )
    ratios = {
        "api/floor": cpu[f"api@{small}"] / cpu[f"floor@{small}"],
        "cli/floor": cpu[f"cli@{small}"] / cpu[f"floor@{small}"],
        "api/floor-nogc": cpu[f"api@{small}"] / cpu[f"floor-nogc@{small}"],
        "cli/floor-nogc": cpu[f"cli@{small}"] / cpu[f"floor-nogc@{small}"],
        f"api {large}/{small}": cpu[f"api@{large}"] / cpu[f"api@{small}"],
        f"cli {large}/{small}": cpu[f"cli@{large}"] / cpu[f"cli@{small}"],
    }
    targets = {"api/floor": 1.2, "cli/floor": 1.5, f"api {large}/{small}": 2.1}
    targets[f"cli {large}/{small}"] = 2.1
    print(f"\n## Ratios at {small} hosts\n")
    for name, value in ratios.items():
        target = targets.get(name)
        verdict = ""
        if target is not None:
            verdict = f" (target <= {target:.1f}x: {'met' if value <= target else 'MISSED'})"
        print(f"- {name}: {value:.2f}x{verdict}")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results / f"inventory-{stamp}.json"
    machine = {"python": sys.version, "platform": platform.platform(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({"runs": runs, "ratios": ratios, "machine": machine}, indent=2))
    print(f"\nall runs: {out}")


if __name__ == "__main__":
    main()
