"""The in-process controller's peak memory with every host of a large rollout in flight at once.

Starts a sandbox of ``--hosts`` servers (one real sshd per server on its own loopback address,
see ``fleet sandbox``), then runs one ``fleet rollout PLAN --in-process --batches 100%
--concurrency N`` over all of them, with a fresh state directory (host keys trusted on first use
and pinned, an empty SQLite journal, a lease per host). The plan has three steps per host:
``echo``, a barrier, ``echo``. The barrier holds every host's step (its SSH session open) until
all N hosts have reached it, so that N hosts are in flight at once by construction; the bench
opens it once it has counted N arrivals (a file per host in a directory of its own). A host
that waits longer than ``--hold-timeout`` fails its step, and the run with it.

Measured: the controller's peak RSS (``ru_maxrss`` of the child, from ``wait4``: the kernel's
high-water mark, not a sample), wall time (spawn to exit), CPU (user+sys), and, sampled every
0.25 s from /proc: RSS, threads and open sockets, with their peaks and their values while all N
hosts wait at the barrier. The goal: a peak under 300 MB at 2,000 hosts. ``--sizes 200,2000``
runs one rollout per size on the one sandbox (the first hosts), for the cost per host in flight.

The bench raises its soft limit of open files to what N hosts need (inherited by fleet and the
sandbox's sshd) and says so; it checks that the machine's process and thread limits leave room.
Writes ``bench/results/rss-<stamp>.json``.

    .tox/tests/bin/python bench/rss_bench.py --hosts 2000
    .tox/tests/bin/python bench/rss_bench.py --hosts 2000 --sizes 200,2000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleet.sandbox.sandbox import Sandbox  # noqa: E402
from tests.integration.workers_harness import Fleet  # noqa: E402

RESULTS = REPO / "bench" / "results"
GOAL_MB = 300.0
SAMPLE = 0.25

#: bash on the hosts: ``read -t`` on a FIFO opened read-write waits without a fork, so that
#: N waiting hosts cost the machine nothing while they wait.
BARRIER = (
    "touch {dir}/in/{{{{ host.name }}}}; n=0; until [ -e {dir}/go ]; do read -t 1 <> {dir}/fifo; "
    "n=$((n+1)); [ $n -lt {hold} ] || exit 9; done"
)


def plan_text(tag: str, barrier: Path, hold: int) -> str:
    steps = [
        ("hello", f"echo {tag}-hello"),
        ("barrier", BARRIER.format(dir=barrier, hold=hold)),
        ("bye", f"echo {tag}-bye"),
    ]
    lines = ["name: rss-bench", "stages:"]
    for name, command in steps:
        lines += [f"  - name: {name}", "    steps:", f"      - name: {name}"]
        lines += [f"        apply: {json.dumps(command)}"]
    return "\n".join(lines) + "\n"


def open_files_limit(hosts: int) -> int:
    """Raise our soft limit of open files to what ``hosts`` connections need, children too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * hosts + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft < 2 * hosts + 256:
        raise SystemExit(f"open files limited to {soft} (hard {hard}): {hosts} hosts need more")
    return int(soft)


def check_task_room(hosts: int) -> dict[str, int]:
    """Threads and processes share the machine's pid space: 2 threads a host in the controller
    (its pipeline, paramiko's transport), and on the hosts' side about 3 processes a host."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    threads_max = int(Path("/proc/sys/kernel/threads-max").read_text())
    running = sum(p.name.isdigit() for p in Path("/proc").iterdir())
    need = 5 * hosts + 500
    if need > min(pid_max, threads_max) - running:
        raise SystemExit(f"{hosts} hosts need about {need} tasks; pid_max {pid_max}")
    return {"pid_max": pid_max, "threads_max": threads_max, "tasks_needed": need}


def proc_sample(pid: int) -> dict[str, int] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            sockets += str(fd.readlink()).startswith("socket:")
    return {
        "rss_kb": int(fields.get("VmRSS", "0 kB").split()[0]),
        "hwm_kb": int(fields.get("VmHWM", "0 kB").split()[0]),
        "threads": int(fields.get("Threads", "0")),
        "sockets": sockets,
    }


def one_rollout(
    fleet: Fleet, work: Path, hosts: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    n = len(hosts)
    tag = "r" + secrets.token_hex(4)
    barrier = Path(tempfile.mkdtemp(prefix="fleet-rss-barrier-", dir="/dev/shm"))
    try:
        (barrier / "in").mkdir()
        os.mkfifo(barrier / "fifo")
        for path in (barrier, barrier / "in", barrier / "fifo"):
            path.chmod(0o1777 if path.is_dir() else 0o666)  # the hosts' unprivileged account
        plan = work / f"{tag}.yaml"
        plan.write_text(plan_text(tag, barrier, args.hold_timeout))
        fleet.state = work / f"state-{tag}"
        cmd = [sys.executable, "-m", "fleet", "rollout", str(plan), "--in-process"]
        cmd += ["--batches", "100%", "--concurrency", str(n), "-o", "json"]
        if n < len(args.all_hosts):
            cmd += ["--limit", ",".join(hosts)]
        return watch(fleet, cmd, barrier, n, work / f"{tag}.out", args)
    finally:
        shutil.rmtree(barrier, ignore_errors=True)


def watch(
    fleet: Fleet, cmd: list[str], barrier: Path, n: int, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    opened = None
    at_barrier: dict[str, int] | None = None
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with out.open("w") as stdout, (out.with_suffix(".err")).open("w") as stderr:
        proc = subprocess.Popen(cmd, env=fleet.env(), cwd=REPO, stdout=stdout, stderr=stderr)
    deadline = started + args.timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if now > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        sample = proc_sample(proc.pid)
        if sample:
            samples.append({"t": round(now - started, 2), **sample})
        if opened is None and sum(1 for _ in (barrier / "in").iterdir()) >= n:
            at_barrier = sample
            (barrier / "go").touch()
            opened = now - started
        time.sleep(SAMPLE)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    err = out.with_suffix(".err").read_text()
    ok = proc.returncode == 0 and any(f"ok {n}," in x for x in err.splitlines())
    return {
        "hosts": n,
        "ok": ok,
        "exit": proc.returncode,
        "summary": [x for x in err.splitlines() if x.startswith("run r")][-1:],
        "error_tail": "" if ok else err[-3000:],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "all_in_flight_at_s": None if opened is None else round(opened, 2),
        "at_barrier": at_barrier,
        "peak_threads": max((s["threads"] for s in samples), default=0),
        "peak_sockets": max((s["sockets"] for s in samples), default=0),
        "samples": samples,
    }


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    box = Sandbox(work / "sandbox", servers=args.hosts, seed=7)
    began = time.monotonic()
    box.start()
    try:
        up = time.monotonic() - began
        print(f"sandbox: {args.hosts} sshd hosts up in {up:.1f} s", flush=True)
        args.all_hosts = [s.name for s in box.servers]
        fleet = Fleet(work / "state", box.config_path, {})
        runs = []
        for size in args.sizes:
            run = one_rollout(fleet, work, args.all_hosts[:size], args)
            print(line(run), flush=True)
            runs.append(run)
        return {"sandbox_up_s": round(up, 1), "runs": runs}
    finally:
        box.stop()


def line(run: dict[str, Any]) -> str:
    state = "ok" if run["ok"] else f"FAILED (exit {run['exit']})"
    return (
        f"{run['hosts']} hosts: {state}, peak RSS {run['peak_rss_mb']} MB, wall {run['wall_s']} s,"
        f" CPU {run['cpu_s']} s, all in flight at {run['all_in_flight_at_s']} s, peak threads "
        f"{run['peak_threads']}, peak sockets {run['peak_sockets']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000, help="sandbox servers (1 to 2000)")
    parser.add_argument(
        "--sizes", default="", help="hosts per rollout, comma-separated (default: --hosts)"
    )
    parser.add_argument("--hold-timeout", type=int, default=600, help="barrier wait limit, s")
    parser.add_argument("--timeout", type=float, default=1200, help="one rollout's limit, s")
    args = parser.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",") if x] or [args.hosts]
    if max(args.sizes) > args.hosts:
        parser.error("--sizes larger than --hosts")
    limits = {"open_files": open_files_limit(args.hosts), **check_task_room(args.hosts)}
    print(f"limits: {limits}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fleet-rss-bench-") as tmp:
        result = bench(args, Path(tmp))
    result.update(args={k: v for k, v in vars(args).items() if k != "all_hosts"}, limits=limits)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"rss-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| hosts in flight | peak RSS MB | goal | wall s | CPU s |\n|---:|---:|---|---:|---:|")
    for run in result["runs"]:
        met = "met" if run["ok"] and run["peak_rss_mb"] < GOAL_MB else "missed"
        print(
            f"| {run['hosts']} | {run['peak_rss_mb']} | {met} (< {GOAL_MB:.0f}) "
            f"| {run['wall_s']} | {run['cpu_s']} |"
        )
    if not all(run["ok"] for run in result["runs"]):
        raise SystemExit("a rollout failed: see the result file")


if __name__ == "__main__":
    main()
