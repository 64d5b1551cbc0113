"""Heartbeats as an operator's terminal shows them: rollouts run on a pseudo-terminal, replayed
through a terminal emulator (pyte). In plain mode a line names every wait at least every
``output.heartbeat`` seconds; the live view shows the same waits with their age growing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store.base import Event
from tests.integration.crashing import run_reached
from tests.integration.operator_rig import fleet_with, own_sandbox, plan_file
from tests.integration.test_live_view import run_in_pty
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REBOOT = "name: restart\nstages:\n  - name: restart\n    kind: reboot\n"
BEAT = re.compile(r" (srv-\d+) still waiting for (.+?): (\d+)s so far")


@pytest.fixture(scope="module")
def slow_reboots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with own_sandbox(tmp_path_factory.mktemp("beats")) as box:
        assert box.api is not None
        box.api.set_timings(replace(box.api.model.timings, reboot_doing=4.0))
        yield box


def test_plain_mode_on_a_terminal_names_the_reboot_wait_every_second(
    slow_reboots: Sandbox, tmp_path: Path
) -> None:
    fleet = fleet_with(slow_reboots, tmp_path, output__heartbeat=1.0)
    plan = plan_file(tmp_path, REBOOT)
    code, screen = run_in_pty(
        fleet, ["rollout", str(plan), "--limit", "srv-001", "--output", "plain"], timeout=90
    )
    assert code == 0, screen.text()
    beats = [m for line in screen.text().splitlines() if (m := BEAT.search(line))]
    tasks = [m for m in beats if re.fullmatch(r"OVH task \d+ \(hardReboot\)", m.group(2))]
    assert len(tasks) >= 2, screen.text()  # a 4 s reboot task, named every second
    ages = [int(m.group(3)) for m in tasks]
    assert ages == sorted(ages) and ages[-1] >= 2
    assert all(m.group(1) == "srv-001" for m in beats)


def test_the_live_view_shows_the_same_wait_growing_older(
    slow_reboots: Sandbox, tmp_path: Path
) -> None:
    fleet = fleet_with(slow_reboots, tmp_path)
    plan = plan_file(tmp_path, REBOOT)
    code, screen = run_in_pty(fleet, ["rollout", str(plan), "--limit", "srv-002"], timeout=90)
    assert code == 0, screen.text()
    ages = set()
    for frame in screen.frames:
        for m in re.finditer(r"OVH task \d+ \(hardReboot\) \((\d+)s\)", frame):
            ages.add(int(m.group(1)))
    assert len(ages) >= 2 and max(ages) >= 2, ages


def test_the_live_view_shows_hostile_names_and_output_escaped(
    slow_reboots: Sandbox, tmp_path: Path
) -> None:
    fleet = fleet_with(slow_reboots, tmp_path)
    plan = plan_file(
        tmp_path,
        'name: "evil\\e]0;owned\\a"\nstages:\n  - name: "st\\e[2J"\n    steps:\n'
        "      - name: loud\n        apply: printf 'gone\\033[2J\\033]0;t\\007\\n' >&2; exit 3\n",
    )
    code, screen = run_in_pty(fleet, ["rollout", str(plan), "--limit", "srv-003"], timeout=90)
    assert code == 1, screen.text()
    assert b"\x1b]0;owned" not in screen.raw and b"\x1b]0;t" not in screen.raw
    final = screen.text()
    assert "plan evil\\x1b]0;owned\\x07" in final
    assert "st\\x1b[2J/loud" in final and "gone\\x1b[2J\\x1b]0;t\\x07" in final


HOLD = """name: hold
stages:
  - name: hold
    steps:
      - name: hold
        apply: sleep 5
"""


def test_plain_mode_names_a_lease_wait_and_its_holder(
    slow_reboots: Sandbox, tmp_path: Path
) -> None:
    """A host held by another run: the wait for its lease is named every second, with the
    holder, until the lease is free and the host runs."""
    fleet = fleet_with(slow_reboots, tmp_path, output__heartbeat=1.0)
    holder = fleet.popen("rollout", str(plan_file(tmp_path, HOLD, "hold.yaml")), "-l", "srv-003")
    try:
        wait_for("the holder's step to start", lambda: run_reached(fleet, step_started), 60)
        code, screen = run_in_pty(
            fleet,
            ["rollout", str(plan_file(tmp_path, REBOOT)), "-l", "srv-003", "--output", "plain",
             "--wait-for-leases", "60s"],
            timeout=120,
        )  # fmt: skip
    finally:
        holder.communicate(timeout=120)
    assert holder.returncode == 0
    assert code == 0, screen.text()
    beats = [m for line in screen.text().splitlines() if (m := BEAT.search(line))]
    leases = [m for m in beats if m.group(2).startswith("the lease held by ")]
    assert len(leases) >= 2, screen.text()  # a 5 s hold, named every second
    assert all(m.group(1) == "srv-003" for m in leases)


def step_started(events: list[Event]) -> bool:
    return any(e.kind == "step.start" for e in events)
