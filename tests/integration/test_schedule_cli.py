"""The wiring of windows and schedules through real `fleet` processes against the sandbox
(hosts srv-036..srv-040 only): `fleet rollout --window`, `fleet schedule ...`, and
`fleet scheduler run` processes racing on one store, under the global halt."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.store import open_store
from fleet.store.base import ScheduleRecord
from fleet.store.sqlite import SqliteStore
from tests.conftest import FleetCli
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

PLAN = """
name: scheduled-{tid}
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
      - name: stamp
        apply: mkdir -p "$HOME"/{{{{ tid }}}} && date +%s.%N >> "$HOME"/{{{{ tid }}}}/stamps
"""


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(tid="t" + secrets.token_hex(4)))
    return path


@contextmanager
def store_of(fleet: FleetCli) -> Iterator[SqliteStore]:
    store = open_store(fleet.state / "fleet.db")
    assert isinstance(store, SqliteStore)
    try:
        yield store
    finally:
        store.close()


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def test_rollout_waits_for_its_window_until_the_global_halt(
    fleet: FleetCli, plan_file: Path
) -> None:
    # a window three days from now: closed now, whatever the day
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a")
    proc = fleet.popen(
        "rollout", str(plan_file), "--limit", "srv-039", "--window", f"{day} 00:00-01:00 UTC"
    )
    try:
        with store_of(fleet) as store:

            def waiting() -> bool:
                runs = store.list_runs()
                return bool(runs) and any(e.kind == "window.wait" for e in store.events(runs[0].id))

            wait_for("the rollout to wait for its window", waiting)
            fleet("halt", "--reason", "change freeze", check=0)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 2, err
            (run,) = store.list_runs()
            assert run.state == "halted" and "change freeze" in (run.reason or "")
            kinds = [e.kind for e in store.events(run.id)]
            assert "window.wait" in kinds and "host.start" not in kinds
            # the window is kept with the run: a resume waits for it again, it does not run now
            fleet("unhalt", check=0)
            resumed = fleet.popen("resume", run.id)
            try:
                wait_for(
                    "the resumed rollout to wait for its window again",
                    lambda: sum(e.kind == "window.wait" for e in store.events(run.id)) >= 2,
                )
                fleet("halt", "--reason", "still frozen", check=0)
                _, err = resumed.communicate(timeout=60)
                assert resumed.returncode == 2, err
                assert "host.start" not in [e.kind for e in store.events(run.id)]
            finally:
                stop(resumed)
                fleet("unhalt", check=0)
    finally:
        stop(proc)


def test_rollout_refuses_a_bad_window_before_creating_a_run(
    fleet: FleetCli, plan_file: Path
) -> None:
    proc = fleet("rollout", str(plan_file), "-l", "srv-039", "--window", "Sat 02:00-05:00", check=3)
    assert "time zone" in proc.stderr
    with store_of(fleet) as store:
        assert store.list_runs() == []


def test_schedule_commands(fleet: FleetCli, plan_file: Path, tmp_path: Path) -> None:
    windows = tmp_path / "windows.yaml"
    windows.write_text("- deny: Sun 00:00-06:00\n  tz: Europe/Paris\n  scope: dc:gra3\n")
    added = fleet(
        "schedule", "add", "nightly", "--plan", str(plan_file), "--limit", "srv-036,srv-037",
        "--cron", "30 2 * * *", "--tz", "Europe/Paris", "--window", "daily 02:00-05:00 Europe/Paris",
        "--windows", str(windows), "--batches", "1,100%", "--missed", "once", "--for", "1y",
        check=0,
    )  # fmt: skip
    assert "schedule nightly added; next due" in added.stdout
    (row,) = json.loads(fleet("schedule", "list", "--json", check=0).stdout)
    assert (row["state"], row["missed"], row["tz"]) == ("active", "once", "Europe/Paris")
    assert row["args"][:2] == ["--limit", "srv-036,srv-037"]
    assert "--window" in row["args"] and str(windows.resolve()) in row["args"]
    due = datetime.fromisoformat(row["next_due"])
    assert due.tzinfo is not None and due.minute == 30
    shown = fleet("schedule", "show", "nightly", check=0).stdout
    assert shown.count("  next  ") == 5 and ("CET" in shown or "CEST" in shown)
    fleet("schedule", "pause", "nightly", check=0)
    assert json.loads(fleet("schedule", "list", "--json", check=0).stdout)[0]["state"] == "paused"
    fleet("schedule", "resume", "nightly", check=0)
    assert fleet("schedule", "add", "nightly", "--plan", str(plan_file), "--cron", "0 1 * * *",
                 check=1).stderr.count("already exists") == 1  # fmt: skip
    for bad, message in (
        (["--cron", "0 2 30 2 *"], "bad cron"),
        (["--cron", "@daily"], "'0 0 * * *'"),
        (["--cron", "0 0 2 * * *"], "expected exactly 5"),
        (["--cron", "5/15 * * * *"], "5-59/15"),
        (["--cron", "0 2 * * *", "--tz", "Europe/Pariss"], "unknown time zone"),
        (["--cron", "0 2 * * *", "--window", "Sat 02:00-05:00"], "time zone"),
        (["--cron", "0 2 * * *", "--limit", "srv-999"], "srv-999"),
    ):
        proc = fleet("schedule", "add", "other", "--plan", str(plan_file), *bad, check=3)
        assert message in proc.stderr
    fleet("schedule", "remove", "nightly", check=0)
    assert json.loads(fleet("schedule", "list", "--json", check=0).stdout) == []
    # an equal-ended range is that one day (croniter alone reads `6-6` as every day)
    fleet("schedule", "add", "saturdays", "--plan", str(plan_file), "--cron", "0 2 * * 6-6",
          "--limit", "srv-036", check=0)  # fmt: skip
    nexts = [ln for ln in fleet("schedule", "show", "saturdays", check=0).stdout.splitlines()
             if ln.strip().startswith("next")]  # fmt: skip
    assert len(nexts) == 5 and all("Sat" in ln for ln in nexts), nexts
    fleet("schedule", "remove", "saturdays", check=0)
    fleet("schedule", "remove", "nightly", check=3)


def due_schedule(fleet: FleetCli, plan_file: Path, name: str) -> datetime:
    """A daily schedule whose due time was a minute ago (and not again for a day)."""
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=1)).replace(second=0, microsecond=0)
    with store_of(fleet) as store:
        store.add_schedule(
            ScheduleRecord(
                name=name,
                plan=str(plan_file),
                cron=f"{due.minute} {due.hour} * * *",
                tz="UTC",
                args=("--limit", "srv-039,srv-040", "--concurrency", "2"),
                created_by="test",
                since=now - timedelta(minutes=5),
            )
        )
    return due


def test_two_schedulers_race_and_exactly_one_rollout_starts(
    fleet: FleetCli, plan_file: Path
) -> None:
    due = due_schedule(fleet, plan_file, "race")
    procs = [fleet.popen("scheduler", "run", "--once", "--wait") for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert sum(err.count("race: started run") for _, err in outputs) == 1, outputs
    finally:
        for p in procs:
            stop(p)
    with store_of(fleet) as store:
        (run,) = store.list_runs()
        assert run.state == "done" and sorted(run.hosts) == ["srv-039", "srv-040"]
        (fire,) = store.schedule_fires("race")
        assert (fire.due_at, fire.outcome, fire.run_id) == (due, "started", run.id)
        assert not any(lease.host == "scheduler:leader" for lease in store.list_leases())
    logs = list((fleet.state / "scheduler").glob("race-*.log"))
    assert len(logs) == 1 and f"run {run.id}" in logs[0].read_text()


def test_global_halt_stops_the_scheduler_from_starting_anything(
    fleet: FleetCli, plan_file: Path
) -> None:
    due = due_schedule(fleet, plan_file, "halted")
    fleet("halt", "--reason", "storage alerts", check=0)
    proc = fleet("scheduler", "run", "--once", "--wait", check=0)
    assert "global halt" in proc.stderr and "storage alerts" in proc.stderr
    with store_of(fleet) as store:
        assert store.list_runs() == [] and store.schedule_fires("halted") == []
    fleet("unhalt", check=0)
    fleet("scheduler", "run", "--once", "--wait", check=0)
    with store_of(fleet) as store:
        (run,) = store.list_runs()
        (fire,) = store.schedule_fires("halted")
        assert (fire.due_at, fire.run_id, run.state) == (due, run.id, "done")
