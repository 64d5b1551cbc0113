"""``progress_of``: the last outcome per host and step, as read back from a journal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fleet.engine.journal import progress_of
from fleet.store.base import Event

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ev(kind: str, host: str | None = None, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=AT, host=host, **fields)


def test_steps_and_host_outcomes() -> None:
    events = [
        ev("run.start"),
        ev("batch.start", data={"index": 1}),
        ev("host.start", "a"),
        ev("step.start", "a", stage="prep", step="dir"),
        ev("step.end", "a", stage="prep", step="dir", outcome="converged"),
        ev("step.start", "a", stage="prep", step="pkg"),
        ev("host.start", "b"),
        ev("step.start", "b", stage="prep", step="dir"),
        ev("step.end", "b", stage="prep", step="dir", outcome="failed"),
        ev("host.end", "b", outcome="failed"),
    ]
    assert progress_of(events) == {
        "a": {"": "running", "prep/dir": "converged", "prep/pkg": "started"},
        "b": {"": "failed", "prep/dir": "failed"},
    }


def test_events_without_a_host_are_ignored() -> None:
    events = [ev("run.start"), ev("gate", outcome="failed"), ev("run.end", outcome="done")]
    assert progress_of(events) == {}


def test_last_event_wins() -> None:
    events = [
        ev("step.end", "a", stage="s", step="x", outcome="failed"),
        ev("host.end", "a", outcome="stopped"),
        ev("host.start", "a"),
        ev("step.start", "a", stage="s", step="x"),
        ev("step.end", "a", stage="s", step="x", outcome="applied"),
        ev("host.end", "a", outcome="ok"),
    ]
    assert progress_of(events) == {"a": {"": "ok", "s/x": "applied"}}


def test_missing_outcomes_read_as_ended() -> None:
    events = [ev("step.end", "a", stage="s", step="x"), ev("host.end", "a")]
    assert progress_of(events) == {"a": {"s/x": "ended", "": "ended"}}


def test_host_events_other_than_start_and_end_only_register_the_host() -> None:
    events = [
        ev("host.wait", "a", data={"what": "lease"}),
        ev("host.skip", "b", outcome="quarantine"),
        ev("step.start", "c"),  # no step name: not a step
    ]
    assert progress_of(events) == {"a": {}, "b": {}, "c": {}}
