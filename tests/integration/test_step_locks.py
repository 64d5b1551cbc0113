"""Steps fenced on the host: a remote command that outlives fleet is never started a second time
beside itself, nor run again once it ended well; a resume waits for it (or fails clearly when it
runs past the step's timeout). Real sshd hosts of the sandbox, real flock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store.base import Event
from tests.conftest import FleetCli
from tests.integration.crashing import kill_when
from tests.integration.test_rollout import events_of, new_tid, write_plan
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# No `check`: only the host-side record keeps a resume from running the step again.
UNCHECKED = """
name: unchecked
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
      - name: long
        apply: >-
          mkdir -p "$HOME"/{{{{ tid }}}} && echo "start $FLEET_FENCE" >> "$HOME"/{{{{ tid }}}}/log
          && sleep {sleep} && echo "end $FLEET_FENCE" >> "$HOME"/{{{{ tid }}}}/log
        timeout: {timeout}
"""


def plan(tmp_path: Path, tid: str, sleep: float, timeout: float = 600) -> Path:
    text = UNCHECKED.format(tid=tid, sleep=sleep, timeout=timeout)
    return write_plan(tmp_path / "p.yaml", text)


def step_started(events: list[Event]) -> bool:
    return any(e.kind == "step.start" and e.step == "long" for e in events)


def host_log(sandbox: Sandbox, host: str, tid: str) -> list[str]:
    assert sandbox.hosts is not None
    path = sandbox.hosts.home_dir(host, "disk") / tid / "log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_resume_waits_for_the_running_step_and_takes_its_outcome(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    host, tid = "srv-067", new_tid()
    proc = fleet.popen("rollout", str(plan(tmp_path, tid, sleep=3)), "--limit", host)
    wait_for("the command to run on the host", lambda: len(host_log(sandbox, host, tid)) == 1, 30)
    run_id = kill_when(fleet, proc, step_started)
    resumed = fleet("resume", run_id)  # at once: the command is still running there
    assert resumed.returncode == 0, resumed.stderr
    log = host_log(sandbox, host, tid)
    assert [line.split()[0] for line in log] == ["start", "end"], log  # ran once, to its end
    token = log[0].split()[1]
    assert token.isdigit() and log[1] == f"end {token}"  # the first holder's fencing token
    (end,) = [e for e in events_of(fleet, run_id) if e.kind == "step.end"]
    assert end.outcome == "applied" and "adopted" in end.data
    status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
    assert status["state"] == "done"


def test_a_step_still_running_past_its_timeout_fails_clearly(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    host, tid = "srv-068", new_tid()
    # longer than the resume's waits, infrastructure retries included (sandbox: 0.5 s, 1 s)
    proc = fleet.popen("rollout", str(plan(tmp_path, tid, sleep=10, timeout=1)), "--limit", host)
    wait_for("the command to run on the host", lambda: len(host_log(sandbox, host, tid)) == 1, 30)
    run_id = kill_when(fleet, proc, step_started)
    resumed = fleet("resume", run_id)
    assert resumed.returncode == 1
    assert "still running on this host after 1s" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert len(host_log(sandbox, host, tid)) == 1  # nothing started beside it
    wait_for("the command left running to end", lambda: len(host_log(sandbox, host, tid)) == 2, 30)


def test_a_step_that_ended_badly_runs_again_on_resume(
    sandbox: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    """Only a successful end is taken from the host's record: a failed one runs again."""
    host, tid = "srv-069", new_tid()
    failing = UNCHECKED.format(tid=tid, sleep=0, timeout=60).replace(
        '&& echo "end', '&& test -f "$HOME"/{{ tid }}.fixed && echo "end'
    )
    path = write_plan(tmp_path / "p.yaml", failing)
    first = fleet("rollout", str(path), "--limit", host)
    assert first.returncode == 1, first.stderr  # the step failed
    assert sandbox.hosts is not None
    (sandbox.hosts.home_dir(host, "disk") / f"{tid}.fixed").touch()
    run_id = json.loads(fleet("status", "--json", check=0).stdout)[0]["id"]
    resumed = fleet("resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert [line.split()[0] for line in host_log(sandbox, host, tid)] == ["start", "start", "end"]
