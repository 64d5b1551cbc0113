"""kill -9 of fleet at random moments, then ``fleet resume``: every host ends converged and no
non-idempotent step ever runs twice (counted on the hosts themselves)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli
from tests.integration.test_rollout import names, new_tid, write_plan

pytestmark = pytest.mark.integration

# Each step appends to a counter file: running it twice would show as two lines. The `check`
# (a directory made atomically by the step) is what lets a resume tell that it already ran.
COUNTED = """
name: counted
vars: {{tid: {tid}}}
stages:
  - name: prepare
    steps:
      - name: dir
        check: test -d "$HOME"/{{{{ tid }}}}
        apply: mkdir -p "$HOME"/{{{{ tid }}}}
  - name: work
    steps:
{steps}
"""
STEP = """      - name: step{n}
        check: test -d "$HOME"/{{{{ tid }}}}/done{n}
        apply: sleep 0.{d}; mkdir "$HOME"/{{{{ tid }}}}/done{n} && echo ran >> "$HOME"/{{{{ tid }}}}/count{n}
        destructive: true
"""
STEPS = 4
HOSTS = (46, 55)  # ten hosts, used by this module only


def counted_plan(tid: str) -> str:
    steps = "".join(STEP.format(n=n, d=random.randint(1, 3)) for n in range(1, STEPS + 1))
    return COUNTED.format(tid=tid, steps=steps)


def run_id_of(fleet: FleetCli) -> str | None:
    runs = json.loads(fleet("status", "--json", check=0).stdout)
    return str(runs[0]["id"]) if runs else None


def counts(sandbox: Sandbox, tid: str) -> dict[str, list[int]]:
    assert sandbox.hosts is not None
    out = {}
    for i in range(HOSTS[0], HOSTS[1] + 1):
        home = sandbox.hosts.home_dir(f"srv-{i:03d}", "disk") / tid
        out[f"srv-{i:03d}"] = [
            len((home / f"count{n}").read_text().splitlines())
            if (home / f"count{n}").exists()
            else 0
            for n in range(1, STEPS + 1)
        ]
    return out


@pytest.mark.parametrize("trial", range(10))
def test_kill_9_then_resume_converges_without_repeating_steps(
    trial: int, sandbox: Sandbox, tmp_path: Path
) -> None:
    rng = random.Random(1000 + trial)
    fleet = FleetCli(tmp_path / "state", sandbox.config_path)
    tid = new_tid()
    plan = write_plan(tmp_path / "p.yaml", counted_plan(tid))
    proc = fleet.popen(
        "rollout",
        str(plan),
        "--limit",
        names(*HOSTS),
        "--batches",
        "1,30%,100%",
        "--concurrency",
        "4",
        "--confirm",
        "10",
    )
    try:
        time.sleep(rng.uniform(0.3, 3.0))  # a random moment: before, during or after any step
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    run_id = run_id_of(fleet)
    if run_id is None:  # killed before the run was even recorded: start it again
        fleet("rollout", str(plan), "--limit", names(*HOSTS), "--confirm", "10", check=0)
    else:
        resumed = fleet("resume", run_id)
        if resumed.returncode != 0 and "nothing to resume" not in resumed.stderr:
            raise AssertionError(resumed.stdout[-3000:] + resumed.stderr[-3000:])
        status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
        assert status["state"] == "done", status
    found = counts(sandbox, tid)
    assert all(c == [1] * STEPS for c in found.values()), found
