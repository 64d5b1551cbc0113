"""fleet against a raw paramiko loop on the same sandbox hosts, in the same run.

Starts a fleet sandbox (real sshd per server on loopback, in this process), then runs R rounds,
interleaved (the round's first runner alternates), of:

* ``paramiko``: the floor. One paramiko connection per host, one exec channel per command,
  stdout, stderr and exit status read, a thread pool of ``--concurrency`` over the hosts
  (host key checking off, as in the peer benchmark's floor);
* ``fleet``: ``fleet run --commands-file`` through the full rollout engine (SQLite journal
  written before and after every step, a lease per host with its fencing token, batches
  ``1,100%``), with a fresh state directory per run (host keys trusted on first use, empty
  journal).

Both run ``echo step-1`` ... ``echo step-10`` on every host, as separate processes of the same
virtualenv (same Python, same paramiko), and print ``HOST LINE`` per output line; every run's
output is checked (every host returned every step). Measured per run:

* wall: spawn to exit, start-up and imports included (fleet byte-compiled first, as an
  installed fleet is);
* client CPU: user+sys of the child's process tree, ``getrusage(RUSAGE_CHILDREN)`` delta;
* sshd CPU: utime+stime+cutime+cstime delta of the hosts' sshd listeners and their live
  descendants, read from /proc once every session has closed;
* other load CPU: the machine's busy CPU over the run minus client and sshd CPU (noise gauge).

Prints a markdown table of medians with ratios to the paramiko floor and writes every run to
``bench/results/<stamp>.json``. The targets read off the table: fleet within 1.10x of the floor's
wall time and 1.5x of its client CPU.

    .tox/dev/bin/python bench/sandbox_bench.py --hosts 200 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CLK = os.sysconf("SC_CLK_TCK")
FLOOR = "paramiko"
RUNNERS = ("paramiko", "fleet")
TARGETS = {"wall_ratio": 1.10, "client_cpu_ratio": 1.5}
STEP_RE = re.compile(r"^(\S+) (step-\d+)$")


# ---------------------------------------------------------------------------------------------
# the floor, in its own process (``sandbox_bench.py floor ...``)


def floor_main(hosts_tsv: str, commands_file: str, key_file: str, parallel: int) -> int:
    """Raw paramiko over every host; prints ``NAME LINE`` per output line, 1 if any failed."""
    from concurrent.futures import ThreadPoolExecutor

    import paramiko

    hosts = [line.split() for line in Path(hosts_tsv).read_text().splitlines() if line.strip()]
    commands = [c for c in Path(commands_file).read_text().splitlines() if c.strip()]
    pkey = paramiko.PKey.from_path(key_file)

    def one(host: list[str]) -> list[tuple[int, str]]:
        _name, address, port, user = host
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            address,
            port=int(port),
            username=user,
            pkey=pkey,
            look_for_keys=False,
            allow_agent=False,
            timeout=30,
            banner_timeout=30,
            auth_timeout=30,
        )
        try:
            transport = client.get_transport()
            assert transport is not None
            return [_floor_command(transport, command) for command in commands]
        finally:
            client.close()

    with ThreadPoolExecutor(parallel) as pool:
        futures = [(h[0], pool.submit(one, h)) for h in hosts]
    return _floor_report(futures)


def _floor_command(transport: Any, command: str) -> tuple[int, str]:
    channel = transport.open_session(timeout=30)
    try:
        channel.exec_command(command)
        stdout = channel.makefile("rb").read().decode()
        channel.makefile_stderr("rb").read()
        return channel.recv_exit_status(), stdout
    finally:
        channel.close()


def _floor_report(futures: Sequence[tuple[str, Any]]) -> int:
    out, bad = [], 0
    for name, future in futures:
        try:
            results = future.result()
        except Exception as exc:  # reported and counted: the run fails
            print(f"paramiko: FAILED {name}: {exc!r}", file=sys.stderr)
            bad += 1
            continue
        bad += any(code != 0 for code, _ in results)
        out += [f"{name} {line}" for _, stdout in results for line in stdout.splitlines()]
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------
# processes and CPU accounting


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, state, utime+stime+cutime+cstime in ticks), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(rest[1]), rest[0], sum(int(x) for x in rest[11:15]))
    return table


def sshd_tree(listeners: set[int]) -> tuple[float, int]:
    """(CPU seconds of the listeners and their descendants, number of live descendants)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state, _ticks) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [p for p in listeners if p in table]
    live = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        live += pid not in listeners and table[pid][1] != "Z"
        todo += children.get(pid, [])
    return sum(table[p][2] for p in seen) / CLK, live


def wait_sshd_idle(listeners: set[int], limit: float = 20.0) -> bool:
    """Wait (bounded) until no sshd session process is left; True when idle."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if sshd_tree(listeners)[1] == 0:
            return True
        time.sleep(0.05)
    return False


def busy_cpu() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores, minus idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK


def reap(pid: int, limit: float) -> tuple[int, resource.struct_rusage] | None:
    """wait4 one child for at most ``limit`` seconds: (status, its rusage), or None."""
    end = time.monotonic() + limit
    fd = os.pidfd_open(pid)
    try:
        while True:
            got, status, usage = os.wait4(pid, os.WNOHANG)
            if got:
                return status, usage
            left = end - time.monotonic()
            if left <= 0:
                return None
            select.select([fd], [], [], min(left, 1.0))
    finally:
        os.close(fd)


def cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# one run


@dataclass(frozen=True)
class Target:
    """What the runners work on: the sandbox's hosts and the files describing them."""

    names: list[str]
    hosts_tsv: Path
    commands_file: Path
    key_file: Path
    config: Path
    listeners: set[int]
    steps: int


def clean_env() -> dict[str, str]:
    """The caller's environment without FLEET_* settings, so every run starts the same."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}


def argv_for(name: str, target: Target, scratch: Path, args: argparse.Namespace) -> list[str]:
    venv = Path(args.venv)
    if name == FLOOR:
        return [
            str(venv / "bin" / "python"),
            str(Path(__file__).resolve()),
            "floor",
            str(target.hosts_tsv),
            str(target.commands_file),
            str(target.key_file),
            str(args.concurrency),
        ]
    return [
        str(venv / "bin" / "fleet"),
        "--config",
        str(target.config),
        "--state",
        str(scratch / "fleet-state"),
        "run",
        "--forks",
        str(args.concurrency),
        "--commands-file",
        str(target.commands_file),
        *args.fleet_arg,
    ]


def check_output(text: str, target: Target) -> str | None:
    """None when every host printed every step's output as ``HOST step-N``, else what is missing."""
    seen = set()
    for line in text.splitlines():
        m = STEP_RE.match(line.strip())
        if m:
            seen.add((m.group(1), m.group(2)))
    missing = [
        (h, f"step-{i}")
        for h in target.names
        for i in range(1, target.steps + 1)
        if (h, f"step-{i}") not in seen
    ]
    if missing:
        return f"{len(missing)} host/step outputs missing, first {missing[0]}"
    return None


def spawn_timed(argv: list[str], log: Path, timeout: float) -> dict[str, Any]:
    """Run ``argv`` to its end (killed at ``timeout``); wall, rc, peak RSS."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            cwd=log.parent,
            start_new_session=True,
        )
        got = reap(proc.pid, timeout)
        timed_out = got is None
        if got is None:
            os.killpg(proc.pid, signal.SIGKILL)
            got = reap(proc.pid, 30.0)
        wall = time.perf_counter() - t0
    status, usage = got if got is not None else (-1, None)
    proc.returncode = os.waitstatus_to_exitcode(status) if status != -1 else -9
    return {
        "wall_s": round(wall, 3),
        "rc": proc.returncode,
        "timed_out": timed_out,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None,
    }


def run_once(
    name: str, target: Target, logdir: Path, tag: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One measured run of one runner."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=logdir))
    idle_before = wait_sshd_idle(target.listeners)
    s0, _ = sshd_tree(target.listeners)
    r0, busy0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_cpu()
    row = spawn_timed(argv_for(name, target, scratch, args), logdir / tag, args.timeout)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle_after = wait_sshd_idle(target.listeners)
    s1, live = sshd_tree(target.listeners)
    busy = busy_cpu() - busy0
    client, sshd = cpu(r1) - cpu(r0), s1 - s0
    text = (logdir / f"{tag}.out").read_text(errors="replace")
    error = _run_error(row, text, target, idle_after, live)
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "runner": name,
        "hosts": len(target.names),
        **row,
        "client_cpu_s": round(client, 3),
        "sshd_cpu_s": round(sshd, 3),
        "other_cpu_s": round(busy - client - sshd, 3),
        "sshd_idle_before": idle_before,
        "ok": error is None,
        "error": error,
    }


def _run_error(
    row: dict[str, Any], text: str, target: Target, idle_after: bool, live: int
) -> str | None:
    if row["timed_out"]:
        return "timed out"
    if row["rc"] != 0:
        return f"exit status {row['rc']}"
    error = check_output(text, target)
    if error is None and not idle_after:
        error = f"{live} sshd session processes still alive 20 s after the run"
    return error


# ---------------------------------------------------------------------------------------------
# summary


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in RUNNERS:
        mine = [r for r in runs if r["runner"] == name]
        ok = [r for r in mine if r["ok"]]
        row: dict[str, Any] = {"runner": name, "runs": len(mine), "ok_runs": len(ok)}
        row["hosts"] = mine[0]["hosts"] if mine else 0
        for key in ("wall_s", "client_cpu_s", "sshd_cpu_s", "peak_rss_mb", "other_cpu_s"):
            row[key] = round(statistics.median(r[key] for r in ok), 3) if ok else None
        row["wall_min_max"] = (
            [min(r["wall_s"] for r in ok), max(r["wall_s"] for r in ok)] if ok else None
        )
        rows.append(row)
    floor = rows[0]
    for row in rows:
        for key, ratio in (
            ("wall_s", "wall_ratio"),
            ("client_cpu_s", "client_cpu_ratio"),
            ("sshd_cpu_s", "sshd_cpu_ratio"),
        ):
            row[ratio] = round(row[key] / floor[key], 2) if row[key] and floor[key] else None
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    out = [
        "| runner | hosts | wall s | wall / paramiko | client CPU s | CPU / paramiko "
        "| sshd CPU s | peak RSS MB | other load CPU s | ok runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['runner']} | {r['hosts']} | {fmt(r['wall_s'])} | {fmt(r['wall_ratio'])}x "
            f"| {fmt(r['client_cpu_s'])} | {fmt(r['client_cpu_ratio'])}x "
            f"| {fmt(r['sshd_cpu_s'])} | {fmt(r['peak_rss_mb'], 0)} "
            f"| {fmt(r['other_cpu_s'], 1)} | {r['ok_runs']}/{r['runs']} |"
        )
    return "\n".join(out)


def verdict(rows: list[dict[str, Any]]) -> str:
    fleet = next(r for r in rows if r["runner"] == "fleet")
    parts = []
    for key, limit in TARGETS.items():
        value = fleet.get(key)
        state = "n/a" if value is None else ("met" if value <= limit else "NOT met")
        parts.append(f"{key} {fmt_ratio(value)} (target <= {limit:.2f}x): {state}")
    return "; ".join(parts)


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# ---------------------------------------------------------------------------------------------
# the whole benchmark


def write_inputs(sandbox: Any, directory: Path, steps: int) -> Target:
    """The host list (``name address port user``) and command file the runners read."""
    assert sandbox.hosts is not None
    user = sandbox.hosts.login_user
    lines = [f"{s.name} {s.address} {sandbox.port} {user}" for s in sandbox.servers]
    hosts_tsv = directory / "hosts.tsv"
    hosts_tsv.write_text("\n".join(lines) + "\n")
    commands = directory / "commands.txt"
    commands.write_text("".join(f"echo step-{i}\n" for i in range(1, steps + 1)))
    return Target(
        names=[s.name for s in sandbox.servers],
        hosts_tsv=hosts_tsv,
        commands_file=commands,
        key_file=sandbox.dir / "id_ed25519",
        config=sandbox.config_path,
        listeners=set(sandbox.hosts.pids().values()),
        steps=steps,
    )


def rounds(target: Target, logdir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for i in range(args.warmup):
        r = run_once(FLOOR, target, logdir, f"warmup-{i}", args)
        print(f"warmup {i}: {r['wall_s']:.2f} s wall, ok={r['ok']}", flush=True)
    for rnd in range(args.rounds):
        order = RUNNERS[rnd % 2 :] + RUNNERS[: rnd % 2]
        for name in order:
            r = run_once(name, target, logdir, f"{name}-r{rnd + 1}", args)
            r["round"] = rnd + 1
            runs.append(r)
            print(
                f"round {rnd + 1} {name:<9} wall {r['wall_s']:6.2f} s  client CPU "
                f"{r['client_cpu_s']:6.2f} s  sshd CPU {r['sshd_cpu_s']:6.2f} s  other "
                f"{r['other_cpu_s']:6.2f} s  {'ok' if r['ok'] else 'FAILED: ' + str(r['error'])}",
                flush=True,
            )
    return runs


def byte_compile(venv: Path) -> None:
    """Byte-compile the measured fleet, as an installed fleet is: a checkout run with
    PYTHONDONTWRITEBYTECODE set would otherwise compile its sources at every start (about
    0.1 s of client CPU a run that no installed fleet spends; paramiko's are compiled)."""
    where = "import fleet, os; print(os.path.dirname(fleet.__file__))"
    python = str(venv / "bin" / "python")
    package = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True)
    subprocess.run([python, "-m", "compileall", "-q", package.stdout.strip()], check=True)


def run_bench(args: argparse.Namespace) -> int:
    from fleet.sandbox.sandbox import Sandbox

    byte_compile(Path(args.venv))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="fleet-sandbox-bench-"))
    logdir = work / "logs"
    logdir.mkdir()
    sandbox = Sandbox(work / "sandbox", servers=args.hosts)
    runs: list[dict[str, Any]] = []
    try:
        began = time.monotonic()
        sandbox.start()
        print(f"sandbox: {args.hosts} hosts up in {time.monotonic() - began:.1f} s", flush=True)
        runs = rounds(write_inputs(sandbox, work, args.steps), logdir, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        sandbox.stop()
    return report(runs, args, stamp, work)


def report(runs: list[dict[str, Any]], args: argparse.Namespace, stamp: str, work: Path) -> int:
    rows = summarize(runs)
    table = markdown(rows)
    print("\n" + table + "\n\n" + verdict(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stamp}.json"
    meta = machine_meta(args, stamp)
    path.write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=1) + "\n")
    print(f"results: {path}")
    if args.keep_logs:
        print(f"logs: {work / 'logs'}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if runs and all(r["ok"] for r in runs) else 1


def machine_meta(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=REPO)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable: {exc}"
        return (done.stdout or done.stderr).strip()

    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    code = "import importlib.metadata as m; print(m.version('paramiko'), m.version('fleet'))"
    versions = out([str(Path(args.venv) / "bin" / "python"), "-c", code]).split()
    return {
        "date": stamp,
        "hosts": args.hosts,
        "rounds": args.rounds,
        "steps": args.steps,
        "concurrency": args.concurrency,
        "fleet_args": args.fleet_arg,
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "loadavg_end": os.getloadavg(),
        "python": platform.python_version(),
        "paramiko": versions[0] if versions else None,
        "fleet": versions[1] if len(versions) > 1 else None,
        "git": out(["git", "describe", "--always", "--dirty"]),
        "openssh": out(["ssh", "-V"]),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=50, help="hosts at once, both runners")
    ap.add_argument("--warmup", type=int, default=1, help="untimed paramiko runs first")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument(
        "--venv",
        default=os.environ.get("FLEET_BENCH_VENV", str(REPO / ".tox" / "dev")),
        help="virtualenv whose python and fleet are measured (env FLEET_BENCH_VENV)",
    )
    ap.add_argument(
        "--fleet-arg", action="append", default=[], help="extra `fleet run` argument (repeat)"
    )
    ap.add_argument("--keep-logs", action="store_true", help="keep every run's output")
    args = ap.parse_args(argv)
    if not (1 <= args.hosts <= 2000 and 1 <= args.rounds <= 50 and 1 <= args.steps <= 100):
        ap.error("--hosts 1..2000, --rounds 1..50, --steps 1..100")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["floor"]:
        tsv, commands, key, parallel = argv[1:5]
        return floor_main(tsv, commands, key, int(parallel))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return run_bench(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
