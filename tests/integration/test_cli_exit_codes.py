"""The command line's contract, from real runs on the sandbox (srv-041..srv-045): one table of
scenarios, each with the exit code it ends with and the hint an operator reads; errors as one
line plus a hint (a traceback only with --debug), --version and shell completion."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.engine.owners import current_owner
from fleet.sandbox.hosts import generate_ed25519
from fleet.store import open_store
from tests.conftest import REPO, FleetCli

pytestmark = pytest.mark.integration

PLAN = """
name: exit-codes
vars: {{tid: {tid}, bad: [{bad}]}}
stages:
  - name: work
    steps:
      - name: maybe fail
        apply: for b in {{{{ bad }}}}; do [ "$b" = {{{{ host.name }}}} ] && exit 3; done; true
"""


def plan(tmp_path: Path, bad: str = "none") -> str:
    path = tmp_path / f"p-{secrets.token_hex(3)}.yaml"
    path.write_text(PLAN.format(tid="t" + secrets.token_hex(4), bad=bad))
    return str(path)


def rollout(
    fleet: FleetCli, plan_path: str, hosts: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return fleet("rollout", plan_path, "--limit", hosts, "--concurrency", "1", *extra)


@dataclass(frozen=True)
class Case:
    """One row of the table: a scenario run for real, the exit code it must end with, and
    lines its standard error must hold (a hint, a count) or must not."""

    name: str
    scenario: Callable[[FleetCli, Path], subprocess.CompletedProcess[str]]
    code: int
    says: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


def every_host_ok(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    return rollout(fleet, plan(tmp), "srv-041,srv-042")


def failed_within_budget(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    return rollout(fleet, plan(tmp, "srv-042"), "srv-041,srv-042", "--max-failures", "1")


def budget_halts(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    # one at a time, canary first: the canary fails, nothing else starts
    return rollout(fleet, plan(tmp, "srv-041, srv-042, srv-043"), "srv-041,srv-042,srv-043")


def global_halt(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    fleet("halt", "--reason", "storage alerts", check=0)
    return rollout(fleet, plan(tmp), "srv-044")


def resumed_after_a_halt(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = plan(tmp)
    fleet("halt", "--reason", "a pause", check=0)
    rollout(fleet, path, "srv-041,srv-042,srv-043", "--batches", "1,1,100%")
    fleet("unhalt", check=0)
    return fleet("resume", last_run(fleet))


def host_key_changed(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = plan(tmp)
    rollout(fleet, path, "srv-045")  # pins srv-045's key in this test's own store
    store = open_store(fleet.state / "fleet.db")
    try:
        other = generate_ed25519()[1].split()[1]
        store.pin_key("srv-045", "disk", "ssh-ed25519", other)  # as if reinstalled elsewhere
    finally:
        store.close()
    return rollout(fleet, path, "srv-045")


def bad_flag(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    return fleet("rollout", plan(tmp), "--limit", "srv-041", "--max-failure-ratio", "2")


def unknown_run(command: str) -> Callable[[FleetCli, Path], subprocess.CompletedProcess[str]]:
    def run(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
        fleet("status", check=0)  # the store exists; the run does not
        return fleet(command, "r20990101-000000-nope")

    return run


def lease_held(fleet: FleetCli, tmp: Path) -> subprocess.CompletedProcess[str]:
    fleet("status", check=0)  # creates the store
    store = open_store(fleet.state / "fleet.db")
    try:
        store.acquire_lease("srv-045", current_owner("r-other"), 300)
        return rollout(fleet, plan(tmp), "srv-044,srv-045")
    finally:
        store.close()


CASES = [
    Case("every host ok", every_host_ok, 0, ("ok 2, failed 0",), ("hint:",)),
    Case("failed within the budget", failed_within_budget, 1, ("failed 1", "fleet resume")),
    Case(
        "the budget halts", budget_halts, 2, ("halted", "hint: fix the cause, then `fleet resume")
    ),
    Case(
        "a global halt",
        global_halt,
        2,
        ("global halt by", "hint: a global halt is on: `fleet unhalt` lifts it"),
        ("fix the cause",),
    ),
    Case(
        "a resume after a halt counts the whole run",
        resumed_after_a_halt,
        0,
        ("done; ok 3, failed 0, skipped 0, not finished 0 over 2 sessions (this one: ok 3,",),
    ),
    Case(
        "a host key changed",
        host_key_changed,
        1,
        ("failed (hostkey)", "`fleet hostkeys list HOST` shows the pinned keys"),
    ),
    Case("a bad flag", bad_flag, 3, ("error: Invalid value for '--max-failure-ratio'",)),
    *(
        Case(f"{command} of an unknown run", unknown_run(command), 3, ("error: no run ",))
        for command in ("resume", "abort", "status", "report")
    ),
    Case(
        "a lease held elsewhere", lease_held, 4, ("srv-045: skipped (lease)", "fleet leases list")
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_exit_codes_and_hints(case: Case, fleet: FleetCli, tmp_path: Path) -> None:
    proc = case.scenario(fleet, tmp_path)
    assert proc.returncode == case.code, proc.stderr
    for text in case.says:
        assert text in proc.stderr, (text, proc.stderr)
    for text in case.never:
        assert text not in proc.stderr, (text, proc.stderr)
    assert "Traceback" not in proc.stderr


def last_run(fleet: FleetCli) -> str:
    return str(json.loads(fleet("status", "--json", check=0).stdout)[0]["id"])


def test_errors_are_one_line_unless_debug(fleet: FleetCli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["--store", str(blocker / "sub" / "fleet.db"), "status"]
    proc = fleet(*args)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) in (1, 2) and lines[0].startswith("error: "), proc.stderr
    assert "Not a directory" in lines[0]
    assert all(x.startswith("hint: ") for x in lines[1:])
    assert "Traceback" not in proc.stderr
    debug = fleet("--debug", *args)
    assert debug.returncode == proc.returncode
    assert "Traceback (most recent call last)" in debug.stderr


def test_version_and_completion(fleet: FleetCli) -> None:
    from fleet import __version__

    assert fleet("--version", check=0).stdout.strip() == f"fleet, version {__version__}"
    bash = fleet("completion", "bash", check=0).stdout
    assert "_FLEET_COMPLETE=bash_complete" in bash and "complete -o" in bash
    zsh = fleet("completion", "zsh", check=0).stdout
    assert "#compdef fleet" in zsh
    # what the bash script asks for: the subcommands starting with "ro"
    env = {
        **fleet.env(),
        "_FLEET_COMPLETE": "bash_complete",
        "COMP_WORDS": "fleet ro",
        "COMP_CWORD": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fleet"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "plain,rollout" in proc.stdout.splitlines()
    env["COMP_WORDS"], env["COMP_CWORD"] = "fleet report r1 --format ", "4"
    proc = subprocess.run(
        [sys.executable, "-m", "fleet"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.split() == ["plain,json", "plain,html", "plain,junit"]
    assert os.environ.get("_FLEET_COMPLETE") is None


def test_status_lists_runs_as_json(fleet: FleetCli, tmp_path: Path) -> None:
    proc = rollout(fleet, plan(tmp_path), "srv-043")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(fleet("status", "--json", check=0).stdout)
    assert runs[0]["state"] == "done"
