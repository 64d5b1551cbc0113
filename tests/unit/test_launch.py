"""The program's restart with glibc's per-thread malloc caches off (``fleet.launch``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fleet import __version__
from fleet.launch import TUNABLE, tuned_environment

GLIBC = sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
needs_glibc = pytest.mark.skipif(not GLIBC, reason="glibc's tunables only")

#: prints the allocator setting each time the process starts, then runs the console script
PROBE = (
    "import os, sys; print('start', os.environ.get('GLIBC_TUNABLES'), flush=True); "
    "sys.argv = ['fleet', *sys.argv[1:]]; from fleet.launch import main; main()"
)


def _run(env: dict[str, str], *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@needs_glibc
def test_adds_the_tunable_to_an_empty_environment() -> None:
    env = tuned_environment({"PATH": "/usr/bin"}, ["rollout", "plan.yaml"])
    assert env == {"PATH": "/usr/bin", "GLIBC_TUNABLES": f"{TUNABLE}=0"}


@needs_glibc
def test_keeps_the_users_other_tunables() -> None:
    env = tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, ["-i", "x", "run"])
    assert env == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{TUNABLE}=0"}


def test_a_users_own_tcache_setting_wins() -> None:
    assert tuned_environment({"GLIBC_TUNABLES": f"{TUNABLE}=3"}, ["rollout"]) is None


def test_commands_without_hosts_in_parallel_do_not_restart() -> None:
    assert tuned_environment({}, ["status"]) is None
    assert tuned_environment({}, ["--version"]) is None


@needs_glibc
def test_the_program_starts_again_once_with_the_tunable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    lines = _run(env, "run", "--help")
    assert lines[:2] == ["start None", f"start {TUNABLE}=0"]
    assert lines[2].startswith("Usage: fleet run")


@needs_glibc
def test_no_restart_when_the_user_set_it() -> None:
    env = {**os.environ, "GLIBC_TUNABLES": f"{TUNABLE}=2"}
    lines = _run(env, "rollout", "--help")
    assert lines[0] == f"start {TUNABLE}=2"
    assert lines[1].startswith("Usage: fleet rollout")


@needs_glibc
def test_a_quick_command_runs_once() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    assert _run(env, "--version") == ["start None", f"fleet, version {__version__}"]
