"""Where each host of a run stands, derived from the run's journal events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fleet.status import _host_rows
from fleet.store.base import Event

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ev(kind: str, host: str | None = None, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=AT, host=host, **fields)


def rows(hosts: tuple[str, ...], events: list[Event]) -> dict[str, dict[str, Any]]:
    out = _host_rows(hosts, events)
    assert [r["host"] for r in out] == list(hosts)  # the run's order, one row each
    return {r["host"]: r for r in out}


def test_hosts_without_events_are_waiting() -> None:
    assert rows(("a", "b"), []) == {
        "a": {"host": "a", "state": "waiting", "where": None, "message": None},
        "b": {"host": "b", "state": "waiting", "where": None, "message": None},
    }


def test_a_running_host_shows_its_current_step_and_wait() -> None:
    r = rows(
        ("a",),
        [
            ev("host.start", "a"),
            ev("step.start", "a", stage="prep", step="dir"),
            ev("step.end", "a", stage="prep", step="dir", outcome="applied"),
            ev("step.start", "a", stage="boot", step="reboot"),
            ev("host.wait", "a", data={"what": "ssh"}),
        ],
    )["a"]
    assert r == {
        "host": "a",
        "state": "running",
        "where": "boot/reboot",
        "message": "waiting for ssh",
    }


def test_an_ok_host_has_no_where() -> None:
    r = rows(
        ("a",),
        [
            ev("host.start", "a"),
            ev("step.start", "a", stage="s", step="x"),
            ev("host.end", "a", outcome="ok"),
        ],
    )["a"]
    assert (r["state"], r["where"], r["message"]) == ("ok", None, None)


def test_a_failed_host_keeps_where_and_the_step_excerpt() -> None:
    r = rows(
        ("a",),
        [
            ev("host.start", "a"),
            ev("step.start", "a", stage="s", step="x"),
            ev("step.end", "a", stage="s", step="x", outcome="failed", excerpt="no space left"),
            ev("host.end", "a", outcome="failed"),
        ],
    )["a"]
    assert (r["state"], r["where"], r["message"]) == ("failed", "s/x", "no space left")


def test_host_end_excerpt_replaces_the_message() -> None:
    r = rows(
        ("a",),
        [
            ev("host.start", "a"),
            ev("host.wait", "a", data={"what": "lease"}),
            ev("host.end", "a", outcome="stopped", excerpt="halted by ops"),
        ],
    )["a"]
    assert (r["state"], r["message"]) == ("stopped", "halted by ops")


def test_skipped_host() -> None:
    r = rows(("a",), [ev("host.skip", "a", outcome="quarantine", excerpt="quarantined since")])
    assert (r["a"]["state"], r["a"]["message"]) == ("skipped (quarantine)", "quarantined since")


def test_a_restarted_host_clears_its_old_message() -> None:
    r = rows(
        ("a",),
        [
            ev("host.start", "a"),
            ev("host.end", "a", outcome="stopped", excerpt="halted"),
            ev("host.start", "a"),  # the resume
        ],
    )["a"]
    assert (r["state"], r["message"]) == ("running", None)


def test_events_of_other_hosts_and_of_the_run_are_ignored() -> None:
    r = rows(
        ("a",),
        [
            ev("run.start"),
            ev("batch.start", data={"index": 1}),
            ev("host.start", "stranger"),
            ev("host.end", "stranger", outcome="failed"),
        ],
    )
    assert r["a"]["state"] == "waiting"


def test_a_holder_that_lost_its_lease_is_not_running() -> None:
    r = rows(
        ("a",),
        [
            ev("host.start", "a", data={"token": 5}),
            ev("host.lost", "a", outcome="lease lost", excerpt="a: lease lost", data={"token": 5}),
        ],
    )["a"]
    assert (r["state"], r["message"]) == ("lease lost", "a: lease lost")


def test_a_stale_holders_last_word_does_not_hide_the_new_owner() -> None:
    """The new owner started the host (token 9); the old holder (token 5) then recorded its
    loss: the host is the new owner's, running."""
    r = rows(
        ("a",),
        [
            ev("host.start", "a", data={"token": 5}),
            ev("host.start", "a", data={"token": 9}),
            ev("host.lost", "a", outcome="lease lost", data={"token": 5}),
        ],
    )["a"]
    assert r["state"] == "running"


def test_hosts_of_an_interrupted_run_are_interrupted_not_running() -> None:
    events = [ev("host.start", "a"), ev("host.start", "b"), ev("host.end", "b", outcome="ok")]
    out = {r["host"]: r["state"] for r in _host_rows(("a", "b", "c"), events, interrupted=True)}
    assert out == {"a": "interrupted", "b": "ok", "c": "waiting"}
