"""Strict inputs: every bad flag, limit, var or value is refused before anything exists.

Each case runs the real command line against the session sandbox and must end with a one-line
error (and its hint), exit 3, no run record (nor schedule) in the store, and no contact: the
sandbox's own counts prove it, the fake OVH API's (a zero-second latency rule fires on every
request it receives) and every sshd's (its log has a line per connection). A control case
shows both counts move when a command does reach the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.ovh_chaos import ChaosRule
from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli
from tests.integration.test_rollout import write_plan

pytestmark = pytest.mark.integration

HOST = "srv-035"
PLAN = "name: strict\nstages:\n  - name: s\n    steps:\n      - 'true'\n"
ECHO = "name: echo\nvars: {v: fine}\nstages:\n  - name: s\n    steps:\n      - echo {{ v }}\n"


class Contacts:
    """The sandbox's own counts of API requests and SSH connections since it was made."""

    def __init__(self, sandbox: Sandbox) -> None:
        assert sandbox.api is not None and sandbox.hosts is not None
        self.sandbox = sandbox
        self.requests = ChaosRule(kind="latency", seconds=0.0)
        sandbox.api.chaos.add_rule(self.requests)
        self.start = self._connections()

    def _connections(self) -> int:
        hosts = self.sandbox.hosts
        assert hosts is not None
        logs = [hosts.host_dir(s.name) / "run" / "sshd.log" for s in self.sandbox.servers]
        return sum(
            log.read_text(errors="replace").count("Connection from") for log in logs if log.exists()
        )

    @property
    def ssh(self) -> int:
        return self._connections() - self.start

    @property
    def api(self) -> int:
        return self.requests.fired


@pytest.fixture
def contacts(sandbox: Sandbox) -> Iterator[Contacts]:
    counts = Contacts(sandbox)
    try:
        yield counts
    finally:
        assert sandbox.api is not None
        sandbox.api.reset_chaos()


def refused(fleet: FleetCli, *args: str, expect: str) -> None:
    proc = fleet(*args, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 3, (args, proc.stdout, proc.stderr)
    assert lines and lines[0].startswith("error: "), (args, proc.stderr)
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), (args, proc.stderr)
    assert len(lines) <= 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert expect in lines[0], (args, expect, proc.stderr)


def no_run_exists(fleet: FleetCli) -> None:
    assert json.loads(fleet("status", "--json", check=0).stdout) == []
    assert json.loads(fleet("schedule", "list", "--json", check=0).stdout) == []


ROLLOUT_FLAGS = [
    # --concurrency 0 once silently became 20
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "-1"], "out of range (at least 1)"),
    (["--concurrency", "1e3"], "'1e3' is not a whole number"),
    (["--concurrency", "0x10"], "is not a whole number"),
    (["--concurrency", "٣"], "is not a whole number"),  # int() reads Arabic-Indic digits
    (["--concurrency", ""], "is not a whole number"),
    # --bake nan was accepted, --bake inf crashed after the first batch, run left "running"
    (["--bake", "nan"], "'nan' is not a duration"),
    (["--bake", "inf"], "'inf' is not a duration"),
    (["--bake", "1e309"], "is not a duration"),  # float() reads it as infinity
    (["--bake", "-5s"], "is not a duration"),
    (["--bake", "5 minutes"], "is not a duration"),
    (["--bake", "31d"], "out of range"),  # finite, but beyond any timer
    (["--bake", "9" * 30 + "d"], "--bake"),
    # a bad --wait-for-leases left a phantom "running" run
    (["--wait-for-leases", "soon"], "--wait-for-leases"),
    (["--wait-for-leases", "NaN"], "is not a duration"),
    (["--max-failures", "-1"], "out of range (0 or more)"),
    (["--max-failures", "1.5"], "is not a whole number"),
    (["--max-failure-ratio", "nan"], "is not a share"),
    (["--max-failure-ratio", "1.5"], "out of range (0 to 1, or 0% to 100%)"),
    (["--max-failure-ratio", "150%"], "out of range"),
    (["--max-failure-ratio", "-0.1"], "is not a share"),
    (["--max-failure-ratio", "1e-1"], "is not a share"),
    (["--max-failures", "1", "--max-failure-ratio", "0.5"], "not both"),
    (["--batches", "0"], "--batches"),
    (["--batches", "101%"], "--batches"),
    (["--batches", ","], "--batches: empty"),
    # a blank limit once selected every host, '!all' none (exit 0)
    (["--limit", ""], "--limit '' is empty"),
    (["--limit", " , "], "--limit ' , ' is empty"),
    (["--limit", "!all"], "--limit '!all' selects no host"),
    (["--limit", f"{HOST},&srv-036"], "selects no host"),  # each term matches, not both
    (["--limit", "srv-999"], "--limit 'srv-999' matches no host or group"),
    (["--var", "novalue"], "expected NAME=VALUE"),
    (["--window", "Sat 25:00-26:00 Europe/Paris"], "25:00"),
    (["--windows", "/nonexistent/windows.yaml"], "/nonexistent/windows.yaml"),
]


def test_bad_rollout_inputs_create_nothing_and_contact_no_host(
    fleet: FleetCli, tmp_path: Path, contacts: Contacts
) -> None:
    plan = str(write_plan(tmp_path / "p.yaml", PLAN))
    for flags, expect in ROLLOUT_FLAGS:
        limit = [] if "--limit" in flags else ["--limit", HOST]
        refused(fleet, "rollout", plan, *limit, *flags, expect=expect)
    no_run_exists(fleet)
    assert (contacts.api, contacts.ssh) == (0, 0)


def test_bad_inputs_of_the_other_commands_create_nothing_and_contact_no_host(
    fleet: FleetCli, tmp_path: Path, contacts: Contacts
) -> None:
    plan = str(write_plan(tmp_path / "p.yaml", PLAN))
    reinstall = ["reinstall", HOST, "--os", "debian12_64", "--confirm", HOST]
    cases = [
        (["run", "--limit", HOST, "--forks", "0", "true"], "--forks"),
        (["run", "--limit", HOST, "--max-failures", "-2", "true"], "out of range"),
        (["run", "--limit", "", "true"], "--limit '' is empty"),
        (["run", "--limit", "!all", "true"], "selects no host"),
        ([*reinstall, "--timeout", "0"], "out of range (90s, 30m, 1h30m, 2d...; more than 0s"),
        ([*reinstall, "--timeout", "inf"], "--timeout"),
        ([*reinstall, "--concurrency", "0"], "--concurrency"),
        ([*reinstall, "--bake", "nan"], "--bake"),
        ([*reinstall, "--wait-for-leases", "-1"], "--wait-for-leases"),
        ([*reinstall, "--max-failure-ratio", "2"], "--max-failure-ratio"),
        ([*reinstall, "--disks", "0"], "--disks"),
        (["reinstall", "", "--os", "debian12_64", "--confirm", HOST], "HOSTS '' is empty"),
        (["reinstall", "!all", "--os", "debian12_64", "--confirm", HOST], "selects no host"),
        (["plan", plan, "--limit", ""], "--limit '' is empty"),
        (["plan", plan, "--limit", "!all"], "selects no host"),
        (["ovh", "boot", HOST, "rescue", "--timeout", "nan"], "--timeout"),
        (["status", "--limit", "0"], "--limit"),
    ]
    schedule = ["schedule", "add", "nightly", "--plan", plan, "--cron", "0 2 * * *"]
    cases += [
        ([*schedule, "--concurrency", "0"], "--concurrency"),
        ([*schedule, "--bake", "inf"], "--bake"),
        ([*schedule, "--wait-for-leases", "x"], "--wait-for-leases"),
        ([*schedule, "--max-failure-ratio", "nan"], "--max-failure-ratio"),
        ([*schedule, "--max-failures", "-1"], "--max-failures"),
        ([*schedule, "--limit", "!all"], "selects no host"),
        ([*schedule, "--limit", " "], "is empty"),
        (["scheduler", "run", "--once", "--poll", "0s"], "--poll"),
        (["schedule", "show", "nightly", "--next", "0"], "--next"),
    ]
    for args, expect in cases:
        refused(fleet, *args, expect=expect)
    no_run_exists(fleet)
    assert (contacts.api, contacts.ssh) == (0, 0)


def test_a_value_that_would_be_an_option_is_refused_by_plan_and_rollout(
    fleet: FleetCli, tmp_path: Path, contacts: Contacts
) -> None:
    plan = str(write_plan(tmp_path / "echo.yaml", ECHO))
    evil = "v=-oProxyCommand=touch /tmp/fleet-pwned"
    expect = f"host {HOST}: {{{{ v }}}} would start a word with '-'"
    refused(fleet, "plan", plan, "--limit", HOST, "--var", evil, expect=expect)
    refused(fleet, "rollout", plan, "--limit", HOST, "--var", evil, expect=expect)
    refused(fleet, "rollout", plan, "--limit", HOST, "--var", "v=-1", expect=expect)
    no_run_exists(fleet)
    assert (contacts.api, contacts.ssh) == (0, 0)


def test_the_counts_move_when_a_command_does_reach_the_sandbox(
    fleet: FleetCli, contacts: Contacts
) -> None:
    """The control: without it, "no contact" could be a counter that never counts."""
    fleet("run", "--limit", HOST, "true", check=0)
    assert contacts.ssh >= 1
    fleet("ovh", "tasks", HOST, check=0)
    assert contacts.api >= 1


def test_help_shows_the_rules(fleet: FleetCli) -> None:
    text = " ".join(fleet("rollout", "--help", check=0).stdout.split())
    assert (
        "--concurrency INTEGER Hosts at once (default: rollout.concurrency) (at least 1)." in text
    )
    assert "--max-failure-ratio RATIO" in text and "(0 to 1, or 0% to 100%)" in text
    assert "--bake DURATION Wait between batches (90s, 30m, 1h30m, 2d...; 0s to 30d)." in text
    assert "--wait-for-leases DURATION" in text
    reinstall = " ".join(fleet("reinstall", "--help", check=0).stdout.split())
    assert "--timeout DURATION" in reinstall and "more than 0s to 30d" in reinstall


def test_the_edges_of_the_ranges_are_accepted(fleet: FleetCli, tmp_path: Path) -> None:
    plan = str(write_plan(tmp_path / "p.yaml", PLAN))
    proc = fleet(
        "plan", plan, "--limit", f" {HOST} ,", "--batches", "100%", check=0
    )  # a limit with blanks around a name is that name
    assert proc.returncode == 0, proc.stderr
    proc = fleet(
        "rollout",
        plan,
        "--limit",
        HOST,
        "--concurrency",
        "1",
        "--bake",
        "30d",
        "--wait-for-leases",
        "0",
        "--max-failure-ratio",
        "100%",
        check=0,
    )
    assert proc.returncode == 0, proc.stderr
