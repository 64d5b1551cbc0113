"""The ``fleet`` program's first step: the allocator settings a rollout's many threads need.

A rollout holds two threads per host in flight (the host's pipeline and its SSH transport's).
glibc's malloc gives every thread a cache of freed chunks (the tcache: up to 7 chunks of each
size up to 1 KiB) that no other thread can reuse; with thousands of threads those caches add up
to tens of megabytes held for nothing (about 36 KB per host in flight: 119.8 -> 105.2 MB peak
RSS at 400 hosts, ``bench/rss_bench.py``). glibc reads that setting only from the environment,
at process start (``GLIBC_TUNABLES``): so the program sets it and starts itself again, once,
before anything else is imported. A tunable the user already set is left alone; elsewhere than
glibc nothing changes. Only the commands that may hold many hosts at once restart (a
restart costs a few tens of milliseconds); ``fleet.cli.main`` itself (the tests' entry) does none
of this.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.tcache_count"
#: the commands that run hosts in parallel (a word of the command line: an option's value that
#: happens to be one of them only costs a needless restart)
THREADED = frozenset(
    {"rollout", "resume", "run", "reinstall", "preflight", "schedule", "scheduler", "worker"}
)


def tuned_environment(
    environ: dict[str, str] | os._Environ[str], args: list[str]
) -> dict[str, str] | None:
    """The environment to start again with, or None when there is nothing to change
    (``args``: the command line after the program's name)."""
    if not THREADED.intersection(args) or not sys.platform.startswith("linux") or not _glibc():
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    if TUNABLE in current:
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{current}:{TUNABLE}=0" if current else f"{TUNABLE}=0"
    return env


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


def main() -> None:
    """The console script: restart with the tuned allocator if need be, then run the CLI."""
    env = tuned_environment(os.environ, sys.argv[1:])
    if env is not None and sys.orig_argv:
        os.execve(sys.executable, sys.orig_argv, env)
    from fleet.cli import main as cli_main

    cli_main()
