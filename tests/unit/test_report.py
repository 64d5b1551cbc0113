"""Printers of a rollout: one human line per event, plain text for logs, one JSON object a line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fleet.report import JsonPrinter, OutputPrinter, PlainPrinter, describe, event_dict
from fleet.store.base import Event
from fleet.transport.base import CommandResult

AT = datetime(2024, 5, 1, 12, 0, 3, 250000, tzinfo=UTC)


def ev(kind: str, host: str | None = None, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=AT, host=host, **fields)


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ev("batch.start", data={"index": 2, "hosts": ["a", "b", "c"]}), "batch 2 start (3 hosts)"),
        (ev("batch.end", data={"index": 2}), "batch 2 end"),
        (
            ev("run.start", data={"batches": [1, 4], "plan_hash": "abc"}),
            "run r1 start",
        ),
        (
            ev(
                "run.end",
                outcome="halted",
                excerpt="failure budget spent",
                data={"ok": 3, "failed": 2},
            ),
            "run r1 end halted ok=3 failed=2: failure budget spent",
        ),
        (ev("run.end", outcome="done", data={"ok": 1}), "run r1 end done ok=1"),
        (ev("host.start", "web-1"), "web-1 start"),
        (ev("host.end", "web-1", outcome="ok"), "web-1 end ok"),
        (ev("host.wait", "web-1", data={"what": "ssh"}), "web-1 waiting for ssh"),
        (
            ev("host.skip", "web-1", outcome="lease", excerpt="held by bob"),
            "web-1 skip lease: held by bob",
        ),
        (ev("step.start", "web-1", stage="prep", step="dir"), "web-1 start prep/dir"),
        (
            ev("step.end", "web-1", stage="prep", step="dir", outcome="applied", excerpt="done\n"),
            "web-1 end prep/dir applied",
        ),
        (
            ev(
                "step.end",
                "web-1",
                stage="prep",
                step="dir",
                outcome="failed",
                exit_code=2,
                excerpt="first\nmkdir: cannot create directory\n\n",
            ),
            "web-1 end prep/dir failed (exit 2): mkdir: cannot create directory",
        ),
        (ev("gate", outcome="ok", exit_code=0, data={"batch": 1}), "- gate ok"),
    ],
)
def test_describe(event: Event, line: str) -> None:
    assert describe(event) == line


def test_describe_cuts_a_long_excerpt_line() -> None:
    event = ev("host.end", "h", outcome="failed", excerpt="x" * 500)
    assert describe(event) == "h end failed: " + "x" * 200


@pytest.mark.parametrize("excerpt", ["\n", "   ", "\n\t\n"])
def test_describe_whitespace_excerpt(excerpt: str) -> None:
    assert describe(ev("host.end", "h", outcome="failed", excerpt=excerpt)) == "h end failed"


# --- plain printer ------------------------------------------------------------------------------

EVENTS = [
    ev("run.start", data={"batches": [1]}),
    ev("batch.start", data={"index": 1, "hosts": ["h"]}),
    ev("host.start", "h"),
    ev("step.start", "h", stage="s", step="x"),
    ev("step.end", "h", stage="s", step="x", outcome="failed", exit_code=1, excerpt="a\nb\r\nc"),
    ev("host.end", "h", outcome="failed", excerpt="s/x failed"),
    ev("batch.end", data={"index": 1}),
    ev("run.end", outcome="failed", excerpt="1 host(s) failed", data={"ok": 0, "failed": 1}),
]


def printed(printer_cls: type[PlainPrinter], events: list[Event], **kw: Any) -> str:
    out = io.StringIO()
    printer = printer_cls(out, **kw)
    for event in events:
        printer.event(event)
    return out.getvalue()


def has_control(text: str) -> bool:
    return any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)


def test_plain_lines_are_timestamped_and_free_of_control_characters() -> None:
    lines = printed(PlainPrinter, EVENTS).split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == len(EVENTS) - 1  # step.start is quiet
    assert all(line.startswith("2024-05-01T12:00:03.250+00:00 ") for line in lines)
    assert not any(has_control(line) for line in lines)
    assert lines[3] == "2024-05-01T12:00:03.250+00:00 h end s/x failed (exit 1): c"


def test_plain_verbose_shows_step_starts() -> None:
    text = printed(PlainPrinter, EVENTS, verbose=True)
    assert "h start s/x" in text
    assert len(text.splitlines()) == len(EVENTS)


def test_plain_timestamps_are_utc() -> None:
    paris = timezone(timedelta(hours=2))
    event = Event(run_id="r", kind="host.start", at=AT.astimezone(paris), host="h")
    assert printed(PlainPrinter, [event]).startswith("2024-05-01T12:00:03.250+00:00 h start")


@pytest.mark.parametrize(
    "event",
    [
        ev("step.end", "h", stage="s", step="x", outcome="failed", excerpt="\x1b[31mboom\x1b[0m"),
        ev("host.skip", "h", outcome="lease", excerpt="held\x07 by\x08 bob"),
        ev("run.end", outcome="halted", excerpt="halted by ops:\nmaintenance", data={}),
    ],
)
def test_plain_output_has_no_control_characters_from_excerpts(event: Event) -> None:
    text = printed(PlainPrinter, [event])
    assert text.endswith("\n")
    assert not has_control(text[:-1])


# --- JSON printer -------------------------------------------------------------------------------


def test_json_one_object_per_line() -> None:
    hostile = ev(
        "step.end",
        "h",
        stage="s",
        step="x",
        outcome="failed",
        exit_code=3,
        excerpt='line1\nline2 "quoted" \x1b[0m é 🚀',
        data={"mode": "rescue", "nested": {"k": [1, 2]}},
    )
    out = io.StringIO()
    printer = JsonPrinter(out)
    for event in [*EVENTS, hostile]:
        printer.event(event)
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    objects = [json.loads(line) for line in lines[:-1]]
    assert len(objects) == len(EVENTS) + 1  # step.start included
    assert all(isinstance(o, dict) and o["run"] == "r1" for o in objects)
    last = objects[-1]
    assert last["excerpt"] == hostile.excerpt
    assert last["data"] == hostile.data
    assert last["at"] == "2024-05-01T12:00:03.250+00:00"
    assert (last["kind"], last["host"], last["exit_code"]) == ("step.end", "h", 3)


def test_event_dict_leaves_out_empty_fields() -> None:
    d = event_dict(ev("run.start"))
    assert d == {
        "seq": None,
        "at": "2024-05-01T12:00:03.250+00:00",
        "run": "r1",
        "kind": "run.start",
    }
    d = event_dict(ev("host.end", "h", outcome="ok", exit_code=0))
    assert d["exit_code"] == 0
    assert "excerpt" not in d
    assert "data" not in d


# --- command output -----------------------------------------------------------------------------


def test_output_printer_prefixes_every_line_with_the_host() -> None:
    out = io.StringIO()
    printer = OutputPrinter(out)
    printer.output("h1", "s/x", CommandResult("uptime", 0, "up 3 days\nload 0.1\n", "warn\n", 0.1))
    printer.output("h2", "s/x", CommandResult("true", 0, "", "", 0.1))
    printer.event(ev("host.end", "h1", outcome="ok"))
    printer.event(ev("host.end", "h2", outcome="failed", excerpt="exit 1"))
    assert out.getvalue() == ("h1 up 3 days\nh1 load 0.1\nh1 stderr: warn\nh2 FAILED: exit 1\n")
