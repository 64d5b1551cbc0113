"""Rollouts under maintenance windows and scheduled rollouts, against the sandbox's real sshd
hosts (srv-036..srv-040 only), driven in-process through the CLI's own wiring
(:func:`fleet.cli.execute`) with a controllable clock for every timing decision."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.cli.app import App
from fleet.cli.options import load_plan
from fleet.cli.wiring import execute
from fleet.clock import FakeClock
from fleet.engine.rollout import Rollout, RolloutOptions, RolloutResult
from fleet.engine.runs import create_run
from fleet.sandbox.sandbox import Sandbox
from fleet.schedule import Launch, Scheduler, attach_windows, parse_window
from fleet.store.base import Event, ScheduleRecord
from fleet.transport.base import CommandResult

pytestmark = pytest.mark.integration

HOSTS = "srv-036,srv-037,srv-038,srv-039,srv-040"

PLAN = """
name: windowed-{tid}
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
      - name: stamp
        apply: mkdir -p "$HOME"/{{{{ tid }}}} && date +%s.%N >> "$HOME"/{{{{ tid }}}}/stamps
      - name: verify
        apply: test -s "$HOME"/{{{{ tid }}}}/stamps
"""


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class OnEvent:
    """A journal observer that runs ``action(event)`` on events of one kind."""

    def __init__(self, kind: str, action: Callable[[Event], None]) -> None:
        self.kind, self.action = kind, action

    def event(self, event: Event) -> None:
        if event.kind == self.kind:
            self.action(event)

    def output(self, host: str, step: str, result: CommandResult) -> None:
        return None


@pytest.fixture
def app(sandbox: Sandbox, tmp_path: Path) -> Iterator[App]:
    state = tmp_path / "state"
    a = App(
        {"state": str(state), "store": str(state / "fleet.db")}, str(sandbox.config_path), False
    )
    try:
        yield a
    finally:
        a.close()


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(tid="t" + secrets.token_hex(4)))
    return path


def windowed_rollout(
    app: App,
    plan_file: Path,
    limit: str,
    clock: FakeClock,
    windows: list[str],
    observers: list[OnEvent],
) -> RolloutResult:
    """One rollout, one host per batch, under ``windows`` on ``clock``."""
    plan = load_plan(str(plan_file))
    hosts = app.hosts(limit)
    options = RolloutOptions(batches="1", concurrency=1, max_failures=0)
    run = create_run(app.store, plan, hosts, options.to_dict())

    def configure(rollout: Rollout) -> None:
        rollout.clock = clock
        rollout.journal.clock = clock
        rollout.journal.observers.extend(observers)
        attach_windows(rollout, [parse_window(w) for w in windows], poll=60)

    return execute(app, run, plan, hosts, options, "plain", extra=[], configure=configure)


def host_takes(clock: FakeClock, minutes: int) -> OnEvent:
    """Every host appears to take ``minutes`` on the controllable clock."""
    return OnEvent("host.start", lambda _: clock.advance(timedelta(minutes=minutes)))


def test_rollout_pauses_at_window_end_and_resumes_in_the_next_window(
    app: App, plan_file: Path
) -> None:
    # Saturday 2026-03-28, 04:20 CET: 40 minutes left in "Sat 02:00-05:00 Europe/Paris"
    clock = FakeClock(utc(2026, 3, 28, 3, 20))
    result = windowed_rollout(
        app, plan_file, HOSTS, clock, ["Sat 02:00-05:00 Europe/Paris"], [host_takes(clock, 25)]
    )
    assert result.state == "done" and result.count("ok") == 5, result.reason
    events = app.store.events(result.run_id)
    starts = [e.at for e in events if e.kind == "batch.start"]
    # batch 1 starts now; batch 2 (25 min estimated, 15 min left) waits for the next Saturday,
    # whose 02:00 is CEST after the DST change: 00:00 UTC; the rest follow in that window
    assert starts == [
        utc(2026, 3, 28, 3, 20),
        utc(2026, 4, 4, 0, 0),
        utc(2026, 4, 4, 0, 25),
        utc(2026, 4, 4, 0, 50),
        utc(2026, 4, 4, 1, 15),
    ]
    (wait,) = [e for e in events if e.kind == "window.wait"]
    assert wait.data["until"] == "2026-04-04T00:00:00.000+00:00" and wait.data["batch"] == 2
    assert "does not fit in the 15m left" in wait.data["reason"]
    assert wait.data["estimate_s"] == 25 * 60
    ends = [e for e in events if e.kind == "host.end"]
    assert all(e.outcome == "ok" for e in ends) and len(ends) == 5
    # journal order: batch 1's host ended, then the wait, then batch 2 started
    second = next(e for e in events if e.kind == "batch.start" and e.data["index"] == 2)
    assert (ends[0].seq or 0) < (wait.seq or 0) < (second.seq or 0)


def test_global_halt_interrupts_the_wait_for_the_window(app: App, plan_file: Path) -> None:
    clock = FakeClock(utc(2026, 3, 28, 3, 50))
    halt = OnEvent("window.wait", lambda _: app.store.set_halt("op", "storage alerts"))
    result = windowed_rollout(
        app,
        plan_file,
        "srv-036,srv-037,srv-038",
        clock,
        ["Sat 02:00-05:00 Europe/Paris"],
        [host_takes(clock, 25), halt],
    )
    assert result.state == "halted" and "global halt by op" in (result.reason or "")
    assert result.exit_code == 2
    events = app.store.events(result.run_id)
    assert result.count("ok") == 1 and len([e for e in events if e.kind == "host.start"]) == 1
    assert [e.kind for e in events if e.kind.startswith("window.")] == [
        "window.open",
        "window.wait",
    ]
    assert clock.now() < utc(2026, 4, 4)  # it did not wait on


class InProcessLauncher:
    """Runs a schedule's rollout in this process on the controllable clock (the subprocess
    launcher is covered by test_schedule_cli)."""

    def __init__(self, app: App, plan_file: Path, clock: FakeClock) -> None:
        self.app, self.plan_file, self.clock = app, plan_file, clock
        self.launched: list[tuple[datetime, datetime, RolloutResult]] = []

    def launch(self, schedule: ScheduleRecord, due: datetime) -> Launch:
        at = self.clock.now()
        windows = [schedule.args[i + 1] for i, a in enumerate(schedule.args) if a == "--window"]
        limit = schedule.args[schedule.args.index("--limit") + 1]
        result = windowed_rollout(self.app, self.plan_file, limit, self.clock, windows, [])
        self.launched.append((due, at, result))
        return Launch(result.state == "done", result.run_id, None, result.state)


@pytest.mark.parametrize(
    ("start", "end", "due"),
    [
        # spring forward: 02:30 does not exist on 2026-03-29, it fires when the clock jumps
        (utc(2026, 3, 28, 12), utc(2026, 3, 29, 3), utc(2026, 3, 29, 1, 0)),
        # fall back: 02:30 happens twice on 2026-10-25, it fires once, at the first
        (utc(2026, 10, 24, 12), utc(2026, 10, 25, 3), utc(2026, 10, 25, 0, 30)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_schedule_fires_a_rollout_at_the_right_utc_instant_across_dst(
    app: App, plan_file: Path, start: datetime, end: datetime, due: datetime
) -> None:
    clock = FakeClock(start)
    window = "daily 02:00-04:00 Europe/Paris"
    app.store.add_schedule(
        ScheduleRecord(
            name="nightly",
            plan=str(plan_file),
            cron="30 2 * * *",
            tz="Europe/Paris",
            args=("--limit", "srv-036,srv-037,srv-038", "--window", window),
            created_at=start,
        )
    )
    launcher = InProcessLauncher(app, plan_file, clock)
    scheduler = Scheduler(app.store, launcher, clock=clock)
    for _ in range(24 * 60):
        if clock.now() >= end:
            break
        scheduler.tick()
        clock.advance(timedelta(minutes=1))
    scheduler.close()
    ((fired_due, fired_at, result),) = launcher.launched
    assert fired_due == due and fired_at == due
    assert result.state == "done" and result.count("ok") == 3
    events = app.store.events(result.run_id)
    assert [e.kind for e in events if e.kind.startswith("window.")] == ["window.open"] * 3
    assert all(e.at == due for e in events if e.kind == "batch.start")
    (fire,) = app.store.schedule_fires("nightly")
    assert (fire.due_at, fire.outcome, fire.run_id) == (due, "started", result.run_id)
