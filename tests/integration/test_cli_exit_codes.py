"""The command line's contract, from real runs on the sandbox (srv-041..srv-045): each documented
exit code, errors as one line plus a hint (a traceback only with --debug), --version and shell
completion."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.engine.owners import current_owner
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


def test_exit_0_when_every_host_is_ok(fleet: FleetCli, tmp_path: Path) -> None:
    proc = rollout(fleet, plan(tmp_path), "srv-041,srv-042")
    assert proc.returncode == 0, proc.stderr


def test_exit_1_when_hosts_failed_within_the_budget(fleet: FleetCli, tmp_path: Path) -> None:
    proc = rollout(fleet, plan(tmp_path, "srv-042"), "srv-041,srv-042", "--max-failures", "1")
    assert proc.returncode == 1, proc.stderr
    assert "failed 1" in proc.stderr


def test_exit_2_when_the_budget_halts(fleet: FleetCli, tmp_path: Path) -> None:
    # one at a time, canary first: the canary fails, nothing else starts
    proc = rollout(fleet, plan(tmp_path, "srv-041, srv-042, srv-043"), "srv-041,srv-042,srv-043")
    assert proc.returncode == 2, proc.stderr
    assert "halted" in proc.stderr and "hint: fix the cause, then `fleet resume" in proc.stderr


def test_exit_3_on_usage_and_configuration_errors(fleet: FleetCli, tmp_path: Path) -> None:
    missing = fleet("rollout", str(tmp_path / "nope.yaml"), "--limit", "srv-041")
    assert missing.returncode == 3
    assert missing.stderr.splitlines() == [
        f"error: plan file {tmp_path / 'nope.yaml'} does not exist"
    ]
    flag = fleet("rollout", plan(tmp_path), "--no-such-flag")
    assert flag.returncode == 3
    assert flag.stderr.splitlines() == [
        "error: No such option '--no-such-flag'.",
        "hint: `fleet rollout --help` shows the usage and an example",
    ]
    bad = fleet("rollout", plan(tmp_path), "--limit", "srv-041", "--max-failure-ratio", "2")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (
        3,
        "error: Invalid value for '--max-failure-ratio': '2' is out of range (0 to 1, or 0% to 100%)",
    )


def test_exit_4_when_a_lease_is_held_elsewhere(fleet: FleetCli, tmp_path: Path) -> None:
    fleet("status", check=0)  # creates the store
    store = open_store(fleet.state / "fleet.db")
    try:
        store.acquire_lease("srv-045", current_owner("r-other"), 300)
        proc = rollout(fleet, plan(tmp_path), "srv-044,srv-045")
    finally:
        store.close()
    assert proc.returncode == 4, proc.stderr
    assert "srv-045: skipped (lease): srv-045: lease held by" in proc.stderr


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
