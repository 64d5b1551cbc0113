"""The journal folded into per-host tracks (shared by the live view and the reports), the estimate
of what remains, the budget line, and the live view's frames rendered without a terminal."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from fleet.live import Frame, LiveView, render_frame
from fleet.reports.model import RunProgress, budget_view, estimate_remaining, human_duration
from fleet.store.base import Event, Owner, RunRecord

T0 = datetime(2024, 2, 29, 23, 59, 0, tzinfo=UTC)
HOSTS = ("a", "b", "c", "d")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(kind: str, t: float, host: str | None = None, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=at(t), host=host, **fields)


def run_record(**options: Any) -> RunRecord:
    opts = {"concurrency": 2, "max_failures": 1, "bake": 0.0, "plan": {"secret": "x"}, **options}
    return RunRecord(
        "r1", "demo", "builtin:demo", "abcdef0123456789", HOSTS, opts, Owner("ops", "m", 1)
    )


STORY = [
    ev("run.start", 0, data={"batches": [1, 3], "plan_hash": "abc"}),
    ev("batch.start", 0, data={"index": 1, "hosts": ["a"]}),
    ev("host.start", 0, "a"),
    ev("step.start", 0, "a", stage="prep", step="dir"),
    ev("step.end", 2, "a", stage="prep", step="dir", outcome="applied", data={"duration": 2}),
    ev("host.end", 10, "a", outcome="ok"),
    ev("batch.end", 10, data={"index": 1}),
    ev("batch.start", 10, data={"index": 2, "hosts": ["b", "c", "d"]}),
    ev("host.start", 10, "b"),
    ev("host.start", 10, "c"),
    ev("step.start", 11, "b", stage="boot", step="reboot"),
    ev("host.wait", 11, "b", stage="boot", step="reboot", data={"what": "OVH task 7 (hardReboot)"}),
    ev("step.start", 11, "c", stage="prep", step="dir"),
    ev(
        "step.end",
        14,
        "c",
        stage="prep",
        step="dir",
        outcome="failed",
        exit_code=3,
        excerpt="one\ntwo [bold]markup[/bold]\n\x1b[31mthree\x1b[0m\nfour",
    ),
    ev(
        "host.end",
        14,
        "c",
        stage="prep",
        step="dir",
        outcome="failed",
        excerpt="prep/dir: apply exited 3",
        data={"failure": "payload"},
    ),
]


def story() -> RunProgress:
    return RunProgress.replay(HOSTS, STORY)


def test_states_spans_and_waits() -> None:
    p = story()
    assert {n: t.state for n, t in p.hosts.items()} == {
        "a": "done",
        "b": "running",
        "c": "failed",
        "d": "waiting",
    }
    a, b, c = p.hosts["a"], p.hosts["b"], p.hosts["c"]
    assert [(s.key, s.outcome, s.batch) for s in a.spans] == [("prep/dir", "applied", 1)]
    assert a.duration == 10
    assert (
        b.wait is not None and b.wait.what == "OVH task 7 (hardReboot)" and b.wait.since == at(11)
    )
    assert (c.failure, c.where, c.message) == ("payload", "prep/dir", "prep/dir: apply exited 3")
    assert c.output is not None and c.output.endswith("four")
    assert (p.session_started, p.session_failed) == (3, 1)
    assert p.current_batch is not None and p.current_batch.index == 2


def test_a_retry_leaves_the_step_interrupted_and_a_resume_resets_unfinished_hosts() -> None:
    p = story()
    p.apply(ev("host.retry", 20, "b", stage="boot", step="reboot", excerpt="ssh refused"))
    assert p.hosts["b"].spans[-1].outcome == "interrupted" and p.hosts["b"].wait is None
    p.apply(ev("host.end", 21, "b", outcome="stopped", excerpt="stopped"))
    p.apply(ev("run.end", 21, outcome="halted", excerpt="failure budget spent"))
    assert (p.state, p.reason) == ("halted", "failure budget spent")
    p.apply(ev("run.resume", 100, data={"batches": [3]}))
    assert {n: t.state for n, t in p.hosts.items()} == dict(
        a="done", b="waiting", c="waiting", d="waiting"
    )
    assert (p.sessions, p.session_failed, p.session_started) == (2, 0, 0)
    p.apply(ev("batch.start", 100, data={"index": 1, "hosts": ["b", "c", "d"]}))
    assert p.batches[-1].number == 3 and p.batches[-1].session == 2


def test_estimate_counts_the_batch_under_way_and_the_later_ones() -> None:
    p = story()  # one host took 10 s, one 4 s: 7 s on average; two at a time
    # b started at 10 s: 7 - 5 = 2 s left at 15 s; d waits in this batch: ceil(1/2) * 7
    assert estimate_remaining(p, at(15), concurrency=2) == 7 + 2
    assert estimate_remaining(RunProgress(HOSTS), at(15), concurrency=2) is None


def test_estimate_of_a_batch_not_started_yet() -> None:
    p = RunProgress.replay(HOSTS, STORY[:7])  # batch 1 done; batch 2 (3 hosts) to come
    assert estimate_remaining(p, at(10), concurrency=2, bake=5) == 2 * 10 + 5


def test_budget_view() -> None:
    p = story()
    view = budget_view(run_record().options, p)
    assert view.line() == "1 failed of 3 started; allowed at most 1 failed hosts; 0 more tolerated"
    p.apply(ev("host.end", 30, "b", outcome="failed"))
    assert budget_view(run_record().options, p).line().endswith("; spent")
    ratio = budget_view({"max_failures": None, "max_ratio": 0.5}, story())
    assert (ratio.left, ratio.spent) == (0, False)  # 1 of 3 failed; floor(1.5) tolerated
    assert budget_view({}, story()).line() == "1 failed of 3 started; allowed unlimited"


def test_human_duration() -> None:
    assert [human_duration(s) for s in (0, 59.9, 65, 3600 * 2 + 5 * 60)] == [
        "0s",
        "59s",
        "1m05s",
        "2h05m",
    ]


def frame_text(progress: RunProgress, now: datetime, height: int = 40) -> str:
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    console.print(render_frame(Frame(run_record(), progress, now, height)))
    return console.export_text()


def test_frame_shows_batch_states_budget_waits_and_failures() -> None:
    text = frame_text(story(), at(76))
    assert "fleet rollout r1  plan demo (abcdef012345)  elapsed 1m16s  remaining ~" in text
    assert "batch 2 of 2: 3 hosts, running" in text
    assert "hosts: waiting 1  running 1  done 1  failed 1" in text
    assert "(running: stage boot 1)" in text
    assert "budget: 1 failed of 3 started; allowed at most 1 failed hosts; 0 more tolerated" in text
    row = next(line for line in text.splitlines() if line.startswith("b "))
    assert "running stage boot" in row and "boot/reboot" in row
    assert "OVH task 7 (hardReboot) (1m05s)" in row, "what is awaited and for how long"
    assert "c prep/dir (payload): prep/dir: apply exited 3" in text
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    assert lines == ["| two [bold]markup[/bold]", "| \\x1b[31mthree\\x1b[0m", "| four"]


def test_frame_of_a_halted_run_says_why() -> None:
    p = story()
    p.apply(ev("run.end", 30, outcome="halted", excerpt="failure budget spent: 2 of 3"))
    text = frame_text(p, at(99))
    assert "run halted: failure budget spent: 2 of 3" in text
    assert "elapsed 30s" in text and "remaining" not in text


def test_frame_fits_many_hosts_in_a_small_terminal() -> None:
    hosts = [f"h{i:03d}" for i in range(200)]
    events = [
        ev("run.start", 0, data={"batches": [200]}),
        ev("batch.start", 0, data={"index": 1, "hosts": hosts}),
    ]
    events += [ev("host.start", 1, h) for h in hosts[:50]]
    events += [
        ev("host.end", 2 + i, h, outcome="failed", excerpt=f"boom {h}")
        for i, h in enumerate(hosts[:20])
    ]
    p = RunProgress.replay(hosts, events)
    text = frame_text(p, at(60), height=30)
    assert len(text.splitlines()) <= 30
    assert "... 21 more" in text  # 30 in flight, 9 rows for them
    assert "earlier failures not shown" in text and "h019" in text


def test_live_view_leaves_its_last_frame_when_the_run_ends() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    view = LiveView(run_record(), console, refresh_per_second=20)
    for event in STORY:
        view.event(event)
    view.event(ev("run.end", 30, outcome="halted", excerpt="failure budget spent"))
    text = out.getvalue()
    assert "run halted: failure budget spent" in text
    assert text.rstrip().endswith("\x1b[?25h"), "the cursor is shown again"
    assert view.progress.state == "halted"
